"""Transfer learning on few labels: cached frozen-backbone features, light heads, fine-tuning, a recipe."""

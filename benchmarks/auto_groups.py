"""How well automatic grouping (vidcat.transfer.select.auto_groups) recovers the corpus' real groups.

    python benchmarks/auto_groups.py      # after benchmarks/real_data.py has cached the features

Pairs of clips from one source (UCF101: same class and gNN = one YouTube video; MLR511: one signer) should
share an automatic group (recall); pairs in one automatic group should share a source (precision).
"""
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / 'benchmarks')]
import real_data as R
from corpus import load_corpus
from vidcat.transfer import select as S
for e in load_corpus(None):
    if e['name'] not in ('ucf101-5','mlr511-arsl'): continue
    f,l,g,cpu,comp,nc=R.features(e,'lite0_8x160',None)
    g = g*100+l if e['name']=='ucf101-5' else g
    same=(g[:,None]==g[None,:]); np.fill_diagonal(same,False)
    for t in (0.1,0.2,0.3,0.4,0.5,0.6):
        a=S.auto_groups(f,5,threshold=t); sa=(a[:,None]==a[None,:]); np.fill_diagonal(sa,False)
        prec=(sa&same).sum()/max(sa.sum(),1); rec=(sa&same).sum()/max(same.sum(),1)
        print(e['name'], t, "groups", len(np.unique(a)), "true", len(np.unique(g)), "pair precision %.2f recall %.2f"%(prec,rec), flush=True)

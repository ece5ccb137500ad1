"""Conditional random fields: the linear-chain CRF layer and a feature-based CRF tagger.

- :class:`LinearChainCRF` (:mod:`pgm.crf.linear_chain`): an ``nn.Module`` over emission scores
  from any network, with start / transition / end scores, ragged-batch masks, allowed-transition
  constraints, log Z, NLL, marginals, Viterbi and k-best decoding, sampling and entropy, all on
  the shared chain core :mod:`probforge.ops.chain`.
- :class:`CRFTagger` (:mod:`pgm.crf.tagger`): ``fit(X, y)`` / ``predict`` /
  ``predict_marginals`` on per-token feature dicts (sklearn-crfsuite's format), L-BFGS / OWL-QN
  or Adam, L1 / L2.
- :class:`BiLSTMCRF` (:mod:`pgm.crf.bilstm`): a BiLSTM-CRF tagger over words and their affixes.
- Data and evaluation: :mod:`pgm.crf.conllu` (CoNLL-U reader), :mod:`pgm.crf.features`
  (standard POS word features), :mod:`pgm.crf.metrics` (accuracy, per-tag P/R/F1).
"""

from typing import TYPE_CHECKING

from probforge.lazy import lazy_exports

# Imported on first use (PEP 562): `probforge --help` must not import torch.
if TYPE_CHECKING:
    from pgm.crf.bilstm import BiLSTMCRF, TokenVocab, train_bilstm_crf
    from pgm.crf.conllu import Sentence, iter_conllu, parse_conllu, read_conllu, ud_ewt_paths
    from pgm.crf.constraints import TransitionConstraints, allowed_transitions, bio_constraints
    from pgm.crf.distribution import LinearChainCRFDistribution
    from pgm.crf.encoding import EncodedCorpus, FeatureEncoder
    from pgm.crf.features import sent2features, word2features
    from pgm.crf.linear_chain import LinearChainCRF
    from pgm.crf.metrics import TagScore, accuracy, classification_report, per_tag_scores
    from pgm.crf.owlqn import minimize_owlqn
    from pgm.crf.tagger import CRFTagger, FitInfo

_EXPORTS = {
    "BiLSTMCRF": "pgm.crf.bilstm",
    "CRFTagger": "pgm.crf.tagger",
    "EncodedCorpus": "pgm.crf.encoding",
    "FeatureEncoder": "pgm.crf.encoding",
    "FitInfo": "pgm.crf.tagger",
    "LinearChainCRF": "pgm.crf.linear_chain",
    "LinearChainCRFDistribution": "pgm.crf.distribution",
    "Sentence": "pgm.crf.conllu",
    "TagScore": "pgm.crf.metrics",
    "TokenVocab": "pgm.crf.bilstm",
    "TransitionConstraints": "pgm.crf.constraints",
    "accuracy": "pgm.crf.metrics",
    "allowed_transitions": "pgm.crf.constraints",
    "bio_constraints": "pgm.crf.constraints",
    "classification_report": "pgm.crf.metrics",
    "iter_conllu": "pgm.crf.conllu",
    "minimize_owlqn": "pgm.crf.owlqn",
    "parse_conllu": "pgm.crf.conllu",
    "per_tag_scores": "pgm.crf.metrics",
    "read_conllu": "pgm.crf.conllu",
    "sent2features": "pgm.crf.features",
    "train_bilstm_crf": "pgm.crf.bilstm",
    "ud_ewt_paths": "pgm.crf.conllu",
    "word2features": "pgm.crf.features",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "BiLSTMCRF",
    "CRFTagger",
    "EncodedCorpus",
    "FeatureEncoder",
    "FitInfo",
    "LinearChainCRF",
    "LinearChainCRFDistribution",
    "Sentence",
    "TagScore",
    "TokenVocab",
    "TransitionConstraints",
    "accuracy",
    "allowed_transitions",
    "bio_constraints",
    "classification_report",
    "iter_conllu",
    "minimize_owlqn",
    "parse_conllu",
    "per_tag_scores",
    "read_conllu",
    "sent2features",
    "train_bilstm_crf",
    "ud_ewt_paths",
    "word2features",
]

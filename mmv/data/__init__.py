"""From files on disk (or shards) to batches of tensors; no model code.

decode (``video``) -> augment (``transforms``) -> log-mel (``audio``) -> tokenize (``text``) -> one
sample (``clips``) -> batch (``samples.collate``); sources list the videos of each dataset layout,
``shards`` / ``sharding`` store and stream pre-transcoded segments, ``check`` validates a dataset.
"""

from mmv.data.audio import log_mel, mel_matrix
from mmv.data.captions import Narration, nearest_narrations, read_subtitles
from mmv.data.clips import ClipBuilder, ClipDataset
from mmv.data.samples import Skipped, collate
from mmv.data.shards import ShardDataset, ShardWriter
from mmv.data.text import Tokenizer, Vocabulary, tokenize
from mmv.data.video import Clip, VideoInfo, decode_clip, probe_video
from mmv.data.wordvec import load_glove, load_word2vec, vocabulary_from_vectors, word_table

__all__ = ["log_mel", "mel_matrix", "Narration", "nearest_narrations", "read_subtitles", "ClipBuilder",
           "ClipDataset", "Skipped", "collate", "ShardDataset", "ShardWriter", "Tokenizer", "Vocabulary",
           "tokenize", "Clip", "VideoInfo", "decode_clip", "probe_video", "load_glove", "load_word2vec",
           "vocabulary_from_vectors", "word_table"]

"""The words that data, models, metrics and pictures share: prompt types, void labels, keys."""

# The void label of a ground-truth union map (crowd regions; padding in the losses).
IGNORE_INDEX = 255
# In test mode with on_invalid='skip', a sample that cannot be built is fetched as {SKIPPED_KEY: message};
# omni_collate carries the messages in the batch, where the metrics count them.
SKIPPED_KEY = 'omni_skipped'
VISUAL_PROMPT_TYPES = ('mask', 'box', 'scribble')
# Prompts drawn on the target image itself, meaning that one instance: positive clicks, negative
# clicks (a prompt of their own), a box, a scribble.
TARGET_PROMPT_TYPES = ('click', 'neg_click', 'target_box', 'target_scribble')
# Negative exemplars: a visual prompt flagged ``negative`` ("not like this": the answer leaves out
# objects of the reference's kind) is packed as ``'neg_' + its type``.
NEGATIVE_EXEMPLAR_TYPES = tuple(f'neg_{t}' for t in VISUAL_PROMPT_TYPES)
# Every type that takes away from the answer rather than pointing at it.
NEGATIVE_PROMPT_TYPES = ('neg_click',) + NEGATIVE_EXEMPLAR_TYPES
# MessageHub runtime-info key under which a model records the ids of the batch in training (the
# optimizer wrapper names them when a step is not finite).
BATCH_INFO_KEY = 'omniris_batch_ids'

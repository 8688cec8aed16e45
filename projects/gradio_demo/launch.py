"""A web demo of OmniRIS in the browser (Gradio): draw the prompts, see the answer, download the masks.

    python projects/gradio_demo/launch.py [--config CONFIG] [--checkpoint CKPT] [--port 7860] [--host 127.0.0.1]

Defaults: the quickstart's config and its model (``work_dirs/quickstart/iter_2000.pth``) when it
exists, random weights otherwise. The page offers the configs under ``configs/`` and the
checkpoints under ``work_dirs/`` (and the one given here); nothing typed into the page is run.
Serves on 127.0.0.1 unless --host says otherwise. Needs ``requirements/webui.txt`` (installed
by ``.dev_scripts/setup_env.sh``).
"""

import argparse
import logging
import os
import os.path as osp
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', help='config to start with')
    parser.add_argument('--checkpoint', help='checkpoint to start with')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--device', help='cpu, cuda (default: cuda when available)')
    parser.add_argument('--out-dir', help='where the masks of each answer are written (default: a temporary folder)')
    args = parser.parse_args()
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(levelname)s %(message)s')
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    from gradio_demo.webui import (
        DEFAULT_CHECKPOINT,
        DEFAULT_CONFIG,
        WebDemo,
        build_app,
        list_checkpoints,
        list_configs,
        package_root,
    )

    root = package_root()  # configs and checkpoints are found through the package, from any folder

    def in_root(path):  # paths as the user gave them (from any folder), relative to the repository when inside it
        path = osp.abspath(path)
        return osp.relpath(path, root) if path.startswith(root + os.sep) else path

    config = in_root(args.config) if args.config else DEFAULT_CONFIG
    checkpoint = in_root(args.checkpoint) if args.checkpoint else None
    os.chdir(root)

    if not osp.isfile(config):
        parser.error(f'--config {args.config}: no such file')
    if checkpoint is None and osp.isfile(DEFAULT_CHECKPOINT):
        checkpoint = DEFAULT_CHECKPOINT
    if checkpoint is not None and not osp.isfile(checkpoint):
        parser.error(f'--checkpoint {args.checkpoint}: no such file')
    configs = [config] + [c for c in list_configs('.') if c != config]
    checkpoints = [c for c in [checkpoint] if c] + [c for c in list_checkpoints('.') if c != checkpoint]
    demo = WebDemo(configs, checkpoints, device=args.device, out_dir=args.out_dir)
    demo.inferencer(config, checkpoint)  # build the model before the first request
    app = build_app(demo, config, checkpoint)
    app.queue().launch(server_name=args.host, server_port=args.port, share=False, allowed_paths=[demo.out_dir])


if __name__ == '__main__':
    main()

"""Export OmniSegNet's inference path to ONNX, check it against PyTorch and time both.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT OUT_DIR [--opset 17] [--check] [--repeats 3]

Writes ``reference_encoder.onnx``, ``text_encoder.onnx`` (models with a text encoder), ``target.onnx``
and ``omniris_onnx.json`` to OUT_DIR (see ``omniris_mm/apis/onnx_runtime.py``). Batch, reference
and prompt counts, the text length and the image size are dynamic (sides that are multiples of 32,
as the data preprocessor pads them): the graphs serve this config and any other test size or
aspect ratio of the same model. Run them with the inferencer's inputs:

    from omniris_mm.apis.onnx_runtime import ONNXRuntimeInferencer
    inferencer = ONNXRuntimeInferencer(CONFIG, OUT_DIR)   # then as OmniRISInferencer
    out = inferencer('street.jpg', text='the man in the red shirt')

``--check`` answers requests of every prompt kind the model takes with both and prints the largest
relative L2 difference of every output, the share of pixels whose mask argmax agrees, and the median
time of a call with both (references encoded in the call) and their ratio.
"""

import argparse
import json
import time

SUMMARY = ('argmax_agreement', 'answer_agreement', 'pytorch_s', 'onnxruntime_s', 'ratio')


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('out_dir')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--check', action='store_true', help='compare with PyTorch on example requests and time both')
    parser.add_argument('--repeats', type=int, default=3, help='timed rounds of --check')
    parser.add_argument('--threads', type=int, help='threads of both runtimes (default: theirs)')
    args = parser.parse_args()

    import numpy as np
    import torch

    from omniris_mm.apis import OmniRISInferencer
    from omniris_mm.apis.onnx_runtime import ONNXRuntimeInferencer, compare_with_pytorch, example_requests, export_onnx

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    seconds = export_onnx(args.config, args.checkpoint, args.out_dir, args.opset)
    print(f'exported to {args.out_dir} in {time.perf_counter() - start:.1f} s: '
          + ', '.join(f'{k} {v:.1f} s' for k, v in seconds.items()))  # fmt: skip
    if not args.check:
        return
    reference = OmniRISInferencer(args.config, args.checkpoint, device='cpu', cache_references=False)
    runtime = ONNXRuntimeInferencer(args.config, args.out_dir, num_threads=args.threads, cache_references=False)
    h, w = reference.input_size or (480, 640)
    rng = np.random.default_rng(0)
    requests = example_requests(reference, rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
                                rng.integers(0, 255, (h, w, 3), dtype=np.uint8))  # fmt: skip
    figures = compare_with_pytorch(reference, runtime, requests, args.repeats)
    print(json.dumps(figures, indent=1))
    diffs = {k: v for k, v in figures.items() if k not in SUMMARY}
    print(f'largest relative L2 difference {max(diffs.values()):.2e} ({max(diffs, key=diffs.get)}); argmax agreement '
          f'{100 * figures["argmax_agreement"]:.3f} %, answers {100 * figures["answer_agreement"]:.3f} %; a call: '
          f'PyTorch {figures["pytorch_s"]:.3f} s, ONNX Runtime {figures["onnxruntime_s"]:.3f} s '
          f'({figures["ratio"]:.2f}x)')  # fmt: skip


if __name__ == '__main__':
    main()

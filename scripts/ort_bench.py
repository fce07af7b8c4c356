"""ONNX Runtime side of `classify`'s bench: one thread, batch 1 and 32, p50 ms per call."""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

model, iterations = sys.argv[1], int(sys.argv[2])
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
opts.inter_op_num_threads = 1
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
out = {"version": ort.__version__}
for n in (1, 32):
    x = np.full((n, 32, 32, 3), 7, dtype=np.uint8)
    sess.run(None, {"image": x})
    times = []
    for _ in range(max(iterations // min(n, 8), 1)):
        t = time.perf_counter()
        sess.run(None, {"image": x})
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    out[str(n)] = times[len(times) // 2]
print(json.dumps(out))

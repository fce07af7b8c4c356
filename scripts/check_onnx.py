"""Independent check of an exported model with ONNX Runtime (not our code, not tract):
the contract's input/output names, types and symbolic batch, the metadata keys, the
golden probabilities that burn computed at export time, and the optional `ood_score`
output ([N], finite).

usage: check_onnx.py MODEL.onnx GOLDEN.json
"""
import json
import sys

import numpy as np
import onnxruntime as ort

model_path, golden_path = sys.argv[1], sys.argv[2]
sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
(inp,), outs = sess.get_inputs(), sess.get_outputs()
out = outs[0]
extra = [o.name for o in outs[1:]]
assert extra in ([], ["ood_score"]), extra
assert inp.name == "image" and inp.type == "tensor(uint8)", (inp.name, inp.type)
assert inp.shape[1:] == [32, 32, 3] and isinstance(inp.shape[0], str), inp.shape
assert out.name == "probabilities" and out.type == "tensor(float)", (out.name, out.type)
meta = sess.get_modelmeta().custom_metadata_map
for key in ("labels", "model_version", "dataset", "val_accuracy", "trained_at", "config"):
    assert key in meta, f"metadata {key} missing"
labels = json.loads(meta["labels"])

golden = json.load(open(golden_path))
images = np.stack([np.frombuffer(bytes.fromhex(h), dtype=np.uint8).reshape(32, 32, 3) for h in golden["images_hex"]])
want = np.array(golden["probabilities"], dtype=np.float32)
for n in (1, len(images)):
    answers = dict(zip([o.name for o in outs], sess.run(None, {"image": images[:n]})))
    got = answers["probabilities"]
    if "ood_score" in answers:
        assert answers["ood_score"].shape == (n,), answers["ood_score"].shape
        assert np.isfinite(answers["ood_score"]).all()
    assert got.shape == (n, len(labels)), got.shape
    diff = float(np.abs(got - want[:n]).max())
    assert diff <= 1e-4, f"max |diff| {diff}"
    assert (got.argmax(1) == want[:n].argmax(1)).all()
    assert np.allclose(got.sum(1), 1.0, atol=1e-5)
print(f"onnxruntime {ort.__version__}: {model_path} follows the contract; golden max |diff| {diff:.2e}")

"""Zip the arm64 `bootstrap` as Lambda takes it (one executable file at the root,
deflate level 9) and hold both sizes to the budget: the stripped binary at most 10 MB,
the zip at most 5 MB (MB = 10^6 bytes, as AWS counts).

usage: package.py [--report] BOOTSTRAP OUT.zip   (--report: print the sizes, never fail)
"""
import os
import sys
import zipfile

args = sys.argv[1:]
report = args[:1] == ["--report"]
binary, out = args[1:] if report else args
MAX_BINARY, MAX_ZIP = 10_000_000, 5_000_000
info = zipfile.ZipInfo("bootstrap", date_time=(2026, 1, 1, 0, 0, 0))
info.external_attr = 0o100755 << 16  # a regular file, rwxr-xr-x
info.compress_type = zipfile.ZIP_DEFLATED
with open(binary, "rb") as f, zipfile.ZipFile(out, "w") as z:
    z.writestr(info, f.read(), compresslevel=9)
sizes = {"bootstrap": os.path.getsize(binary), "zip": os.path.getsize(out)}
print(f"bootstrap {sizes['bootstrap'] / 1e6:.2f} MB (limit {MAX_BINARY / 1e6:.0f}), "
      f"{out} {sizes['zip'] / 1e6:.2f} MB (limit {MAX_ZIP / 1e6:.0f})")
over = [k for k, limit in (("bootstrap", MAX_BINARY), ("zip", MAX_ZIP)) if sizes[k] > limit]
sys.exit(f"over budget: {', '.join(over)}" if over and not report else 0)

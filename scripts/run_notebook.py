"""Execute a notebook from the repository root (nbclient) and fail on any cell's error.

Usage: python scripts/run_notebook.py examples/notebook.ipynb [executed.ipynb]
CLASSIFY_URL and CLASSIFY_TOKEN pass through to the notebook.
"""

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

root = Path(__file__).resolve().parent.parent
notebook = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
if len(sys.argv) > 2:
    nbformat.write(notebook, sys.argv[2])
outputs = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "stream"]
print("".join(o["text"] for o in outputs))

"""Streaming pipeline benchmark: same as ``actwatch bench`` (see ``actwatch bench --help``).

python benchmarks/pipeline_bench.py --cameras 2 --frames 200
python benchmarks/pipeline_bench.py --cameras 2 --loop --frames 100000 --duration 600   # memory soak
"""

from actwatch.cli.main import app

if __name__ == "__main__":
    app(["bench", *__import__("sys").argv[1:]])

"""A stand-in for modelruntime.distributed_entry in the Ray tests: writes events as rank 0 does
(progress, a log line, the result), or fails, or runs until stopped. Its pid goes to --pid-file."""

import argparse
import json
import os
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", required=True)
    parser.add_argument("--mode", choices=("ok", "fail", "hang"), default="ok")
    parser.add_argument("--pid-file", default="")
    args = parser.parse_args()
    if args.pid_file:
        with open(args.pid_file, "w") as file:
            file.write(str(os.getpid()))
    with open(args.events, "a") as events:
        def write(event):
            events.write(json.dumps(event) + "\n")
            events.flush()

        write({"step": 1, "total": 2, "metrics": {"loss/rm": 0.7}})
        if args.mode == "fail":
            print("rank 0: CUDA out of memory (stand-in)", flush=True)
            sys.exit(3)
        if args.mode == "hang":
            while True:
                time.sleep(0.2)
        write({"log": f"ran in {os.getcwd()} with PYTHONPATH={os.environ.get('PYTHONPATH')}"})
        write({"step": 2, "total": 2, "metrics": {"loss/rm": 0.5}})
        write({"result": {"checkpoint": "/store/rm", "accuracy": 0.75}})


if __name__ == "__main__":
    main()

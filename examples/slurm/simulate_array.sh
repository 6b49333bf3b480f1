#!/bin/bash
# Simulate a 1,000,000-image set as 100 shards in a SLURM array job, then join them.
#   sbatch examples/slurm/simulate_array.sh            # the 100 shards, in parallel
#   astrogen merge shards/part-*.h5 -o set.h5 --virtual   # afterwards (seconds; or without --virtual: a copy)
# Shard i holds whole seed blocks, so the merged set equals the unsharded run bit for bit. A --virtual
# set reads from shards/: move the folder with it, keeping shards/ beside set.h5.
#SBATCH --job-name=astrogen-shards
#SBATCH --array=0-99
#SBATCH --cpus-per-task=2
#SBATCH --time=02:00:00
#SBATCH --output=astrogen-shard-%a.log
set -euo pipefail
mkdir -p shards
astrogen simulate configs/sims/blobs_1000.yaml --n 1000000 --shard "$SLURM_ARRAY_TASK_ID/100" \
    -o "shards/part-$SLURM_ARRAY_TASK_ID.h5"

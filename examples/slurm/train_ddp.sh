#!/bin/bash
# Train the matter DDPM on 2 nodes x 4 GPUs with DDP (Lightning detects SLURM and takes ranks from srun).
#   sbatch examples/slurm/train_ddp.sh
# data.batch_size in the config is the *global* batch (here split 8 ways); the run draws the same batches
# and noise as one process would, so changing --devices / --num-nodes does not change the experiment.
# --ntasks-per-node must equal --devices, and --nodes must equal --num-nodes.
#SBATCH --job-name=astrogen-ddpm
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
#SBATCH --output=astrogen-train-%j.log
set -euo pipefail
srun astrogen train configs/train/matter-ddpm.yaml --devices 4 --num-nodes 2 --strategy ddp --precision bf16-mixed \
    --set data.num_workers=6 --set trainer.out=runs/matter-ddpm
# Then sample on all 8 GPUs into one FieldSet (same samples as one process):
#   srun astrogen sample runs/matter-ddpm/final.ckpt -o runs/matter-ddpm/generated.h5 -n 10000 --devices 4 --num-nodes 2

# %% [markdown]
# # What the Inception module's 1×1 convolutions save
#
# Szegedy et al., *Going Deeper with Convolutions* (2014), section 4: a 5×5 convolution
# with 32 filters on a 28×28×192 map costs about 120 million multiply-adds; a 1×1
# convolution that first reduces the 192 channels to 16 cuts that to about 12.4 million.
# Applied to every branch of every module, these reductions keep GoogLeNet at
# 1.5 billion multiply-adds (Table 1).
#
# This example redoes the arithmetic, compares the "naive" module of Figure 2(a) with the
# reduced one of Figure 2(b) for each of GoogLeNet's nine modules, and prints the profiler's
# table for GoogLeNet next to the paper's Table 1. Nothing is trained: the profiler builds
# the model without initialising its weights and counts analytically.
#
# Script: `python examples/inception_cost.py` (`--quick` is the same: it takes seconds).

# %%
import argparse
import os
import sys

parser = argparse.ArgumentParser(description="The Inception module's cost arithmetic and GoogLeNet's Table 1.")
parser.add_argument("--quick", action="store_true", default=os.environ.get("KERASNETS_QUICK") == "1",
                    help="accepted for uniformity with the other examples: this one is always quick")
parser.add_argument("--output", default="outputs/inception_cost", help="where the plot is written")
# In a notebook the command line is the kernel's: the defaults above apply (edit them here).
IN_NOTEBOOK = "ipykernel" in sys.modules
args = parser.parse_args(args=[] if IN_NOTEBOOK else None)
os.makedirs(args.output, exist_ok=True)

# %% [markdown]
# ## The arithmetic of section 4
#
# A convolution with a k×k kernel from C_in to C_out channels on an H×W output map costs
# H · W · C_out · k · k · C_in multiply-adds.

# %%
import kerasnets
from kerasnets.profiling import conv_macs, inception_module_arithmetic

direct = 28 * 28 * 32 * 5 * 5 * 192
assert direct == conv_macs(28, 192, 32, 5)
cost = inception_module_arithmetic(size=28, in_channels=192, filters=32, reduce_to=16, kernel=5)
print(f"5×5 conv, 192 -> 32 channels on 28×28:          {cost['direct'] / 1e6:6.1f}M multiply-adds")
print(f"1×1 conv 192 -> 16, then 5×5 conv 16 -> 32:     {cost['reduced'] / 1e6:6.1f}M multiply-adds")
print(f"the reduction saves a factor of                 {cost['ratio']:6.1f}")

# %% [markdown]
# ## Naive against reduced, module by module
#
# The naive module (Figure 2a) applies its 1×1, 3×3 and 5×5 convolutions to all the input
# channels; the real one (Figure 2b) puts a 1×1 reduction before the 3×3 and 5×5
# convolutions and a 1×1 projection after the pool. Both are costed on the input that the
# module has in GoogLeNet (the previous row's output), with the widths of Table 1.

# %%
profile = kerasnets.profile("googlenet")  # 224×224, the paper's input


def naive_macs(height, width, in_channels, widths):
    """Figure 2(a): 1×1, 3×3 and 5×5 convolutions on every input channel (and a pool, free)."""
    return height * width * in_channels * (widths["#1×1"] + 9 * widths["#3×3"] + 25 * widths["#5×5"])


modules = []
for previous, row in zip(profile.rows, profile.rows[1:]):
    if row.type == "inception":
        height, width, _ = row.output_shape
        naive = naive_macs(height, width, previous.output_shape[-1], row.widths)
        modules.append((row.name, previous.output_shape[-1], naive, row.macs))

print(f"{'module':<14}{'input ch':>9}{'naive MACs':>13}{'reduced MACs':>14}{'saving':>8}")
for name, channels, naive, reduced in modules:
    print(f"{name:<14}{channels:>9}{naive / 1e6:>12.1f}M{reduced / 1e6:>13.1f}M{naive / reduced:>7.1f}x")
total_naive = sum(m[2] for m in modules)
total_reduced = sum(m[3] for m in modules)
print(f"{'all modules':<14}{'':>9}{total_naive / 1e9:>12.2f}G{total_reduced / 1e9:>13.2f}G"
      f"{total_naive / total_reduced:>7.1f}x")
print(f"GoogLeNet in total: {profile.macs / 1e9:.2f}G multiply-adds at inference "
      "(the paper: 'a computational budget of 1.5 billion multiply-adds')")

# %%
import matplotlib.pyplot as plt

figure, axes = plt.subplots(figsize=(9, 3.8))
names = [m[0].replace("inception_", "") for m in modules]
positions = range(len(modules))
axes.bar([p - 0.2 for p in positions], [m[2] / 1e6 for m in modules], width=0.4, label="naive (Figure 2a)")
axes.bar([p + 0.2 for p in positions], [m[3] / 1e6 for m in modules], width=0.4, label="with 1×1 reductions (Figure 2b)")
axes.set_xticks(list(positions), names)
axes.set_xlabel("Inception module")
axes.set_ylabel("multiply-adds per image (millions)")
axes.set_ylim(0, 1.3 * max(m[2] for m in modules) / 1e6)  # room for the legend
axes.set_title("GoogLeNet's modules with and without dimension reductions")
axes.legend(loc="upper center", ncol=2)
figure.tight_layout()
plot_path = os.path.join(args.output, "inception_cost.png")
figure.savefig(plot_path, dpi=120)
print(f"wrote {plot_path}")
if IN_NOTEBOOK:
    plt.show()
plt.close(figure)

# %% [markdown]
# ## The profiler's table
#
# One row per paper-level block with the columns of Table 1. Parameters are learnable weights
# (biases included); MACs are multiply-adds for one 224×224 image. The auxiliary classifiers
# are training-only and shown apart.

# %%
print(profile.to_text())

# %% [markdown]
# ## Next to the paper's Table 1
#
# Table 1 prints "params" in units of 1024 (inception 3a: 163,328 weights + 368 biases =
# 159.9 × 1024) and "ops" in whole millions of multiply-adds. Three rows of the published
# table disagree with the widths it prints (the profiler's test suite pins them down):
#
# * conv1: a 7×7 convolution from 3 to 64 channels has 9,408 weights (9.2K) and costs 118M,
#   not 2.7K and 34M;
# * inception (4c): its widths give 497.5K parameters; the paper's own ops cell (100M) agrees
#   with them, its params cell (463K) does not;
# * inception (5a): its widths give 1018K and 51M; the paper prints 1072K and 54M.

# %%
# Table 1 of Szegedy et al. (2014): row -> (params in K = 1024 weights, ops in M).
PAPER_TABLE1 = {
    "conv1": (2.7, 34), "conv2": (112, 360),
    "inception_3a": (159, 128), "inception_3b": (380, 304),
    "inception_4a": (364, 73), "inception_4b": (437, 88), "inception_4c": (463, 100),
    "inception_4d": (580, 119), "inception_4e": (840, 170),
    "inception_5a": (1072, 54), "inception_5b": (1388, 71),
    "predictions": (1000, 1),
}
ERRATA = {"conv1", "inception_4c", "inception_5a"}

print(f"{'row':<14}{'params (K)':>11}{'paper':>8}{'ops (M)':>10}{'paper':>8}")
for name, (paper_params, paper_ops) in PAPER_TABLE1.items():
    row = profile.row(name)
    note = "  see the errata above" if name in ERRATA else ""
    print(f"{name:<14}{row.params / 1024:>11.1f}{paper_params:>8}{row.macs / 1e6:>10.1f}{paper_ops:>8}{note}")
print(f"{'total':<14}{profile.params / 1024:>11.1f}{'-':>8}{profile.macs / 1e6:>10.1f}{'~1500':>8}"
      "  (the paper's 'budget of 1.5 billion multiply-adds')")

# %% [markdown]
# The same table as Markdown (`profile.to_markdown()`), or per layer with
# `profile.to_text(per_layer=True)`; from a shell: `kerasnets summary googlenet`.

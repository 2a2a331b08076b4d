"""The papers' training recipes, as data a user can read and override.

A `Recipe` is a frozen dataclass: optimizer, learning rate and its schedule,
momentum, weight decay, label smoothing, gradient clipping, dropout, batch size,
epochs, auxiliary loss weight. ``kerasnets.training.compile_model(model)`` turns one
into a compiled model; ``recipe.replace(learning_rate=0.05)`` overrides a field.

>>> from kerasnets import training
>>> print(training.get_recipe("resnet_cifar").describe())  # doctest: +SKIP
>>> training.recipe_for("googlenet").aux_loss_weight
0.3

Conventions, the same for every recipe:

* **Batch size and learning rate.** ``batch_size`` is the paper's *global*
  batch (all replicas together) and ``learning_rate`` the paper's rate at that
  batch. Training with another global batch ``B`` scales the rate linearly,
  ``lr = learning_rate * B / batch_size`` (Goyal et al., 2017, "Accurate, Large
  Minibatch SGD"), warm-up rate and floor included: `Recipe.with_batch_size`.
  ``lr_scaling="none"`` keeps the paper's rate.
* **Weight decay** is the papers' (Caffe's and TF-slim's) L2 penalty *in the
  loss*, ``weight_decay / 2 * sum(w ** 2)`` over the kernels of convolutions and
  dense layers, so that the gradient gains ``weight_decay * w`` before momentum,
  exactly Caffe's update ``v = m v - lr (g + wd w)``. Biases and BatchNorm
  parameters are not decayed (Caffe's reference models set ``decay_mult: 0`` on
  biases). Keras 3's ``optimizer(weight_decay=...)`` is *decoupled*
  (``w -= lr * wd * w`` after the update, outside the momentum buffer): with
  momentum 0.9 it decays about ten times less than the papers' value, and it
  would touch BatchNorm too, so it is not used. The penalty is part of the
  logged ``loss``.
* **Schedules are in epochs.** ``decay_epochs`` and ``decay_every`` are the
  paper's, for the paper's ``epochs``. Training for another number of epochs
  (`Recipe.with_epochs`) rescales them proportionally while
  ``rescale_schedule`` is true (the default), so a 5-epoch run anneals like the
  full one; set it false to keep the paper's absolute epochs.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any

import keras

from kerasnets._validate import check_choice, check_int, check_number, is_number
from kerasnets._validate import fail as _fail
from kerasnets.card import model_card
from kerasnets.registry import get_entry
from kerasnets.training.callbacks import WarmupUntilAccuracy

__all__ = [
    "Recipe",
    "RECIPES",
    "get_recipe",
    "list_recipes",
    "recipe_for",
    "EpochSchedule",
]

OPTIMIZERS = ("sgd", "rmsprop")
SCHEDULES = ("constant", "step", "exponential", "plateau")
LR_SCALING = ("linear", "none")
WARMUPS = ("constant", "linear")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A training recipe from a paper.

    Attributes:
        name: the recipe's name (``"resnet_cifar"``).
        paper: where its numbers come from.
        optimizer: ``"sgd"`` or ``"rmsprop"``.
        learning_rate: the initial rate at the global batch ``batch_size``.
        batch_size: the paper's global batch; the reference of the linear rule.
        epochs: the paper's number of epochs.
        momentum: SGD momentum, or RMSProp momentum.
        nesterov: Nesterov momentum (SGD).
        rho: RMSProp's decay of the squared-gradient average.
        epsilon: RMSProp's epsilon (added under the square root, as TF1 did).
        weight_decay: the L2 coefficient (Caffe's ``weight_decay``), see the module doc.
        label_smoothing: smoothing of the one-hot targets (Inception v3: 0.1).
        gradient_clip_norm: clip the global gradient norm to this value, or ``None``.
        dropout: the dropout rate of the classifier, passed to builders that take
            ``dropout`` (``None``: the builder's default).
        aux_loss_weight: the weight of each auxiliary classifier's loss (GoogLeNet
            0.3), or ``None`` for the model's own default.
        schedule: ``"constant"``, ``"step"`` (multiply by ``decay_factor`` at each
            of ``decay_epochs``), ``"exponential"`` (multiply by ``decay_factor``
            every ``decay_every`` epochs, staircase) or ``"plateau"`` (multiply by
            ``decay_factor`` when ``plateau_monitor`` stops improving for
            ``plateau_patience`` epochs).
        decay_epochs: the epochs of a ``"step"`` schedule.
        decay_every: the period in epochs of an ``"exponential"`` schedule.
        decay_factor: the factor of each decay (0.1: "divided by 10").
        plateau_monitor: the metric a ``"plateau"`` schedule watches.
        plateau_patience: epochs without improvement before a plateau decay.
        min_learning_rate: the floor of the rate, at ``batch_size``.
        warmup_epochs: epochs at ``warmup_learning_rate`` before the schedule
            starts (ResNet-110 on CIFAR).
        warmup_learning_rate: the warm-up rate, at ``batch_size``.
        warmup_until_accuracy: end the warm-up early, as soon as the training
            accuracy (over the last 50 steps) reaches this value; ``warmup_epochs``
            is then the longest it may last. He et al. (section 4.2) warm
            ResNet-110 up "until the training error is below 80%": 0.2. ``None``
            (the default): the warm-up lasts ``warmup_epochs``. `callbacks`
            returns the `kerasnets.training.callbacks.WarmupUntilAccuracy` that
            watches it.
        warmup: ``"constant"`` (the rate is ``warmup_learning_rate`` throughout
            the warm-up, He et al.) or ``"linear"`` (it rises step by step from
            ``warmup_learning_rate`` to the schedule's rate at the end of the
            warm-up: Goyal et al.'s gradual warm-up, which avoids the jump from
            the warm-up rate to the full rate).
        lr_scaling: ``"linear"`` (the rule above) or ``"none"``.
        rescale_schedule: rescale the schedule's epochs with `with_epochs`.
        notes: where the recipe departs from, or completes, the paper.
    """

    name: str
    paper: str
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    batch_size: int = 256
    epochs: int = 90
    momentum: float = 0.9
    nesterov: bool = False
    rho: float = 0.9
    epsilon: float = 1e-7
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    gradient_clip_norm: float | None = None
    dropout: float | None = None
    aux_loss_weight: float | None = None
    schedule: str = "constant"
    decay_epochs: tuple = ()
    decay_every: float | None = None
    decay_factor: float = 0.1
    plateau_monitor: str = "val_accuracy"
    plateau_patience: int = 5
    min_learning_rate: float = 0.0
    warmup_epochs: float = 0.0
    warmup_learning_rate: float | None = None
    warmup_until_accuracy: float | None = None
    warmup: str = "constant"
    lr_scaling: str = "linear"
    rescale_schedule: bool = True
    notes: str = ""

    def __post_init__(self):
        self._validate()

    # -- validation -----------------------------------------------------------

    def _validate(self):
        try:
            self._check_fields()
        except ValueError as error:
            raise ValueError(f"Recipe '{self.name}': {error}") from None

    def _check_fields(self):
        def fail(field, expected):
            _fail(field, expected, getattr(self, field))

        def number(field, *, positive=False, allow_none=False, upper=None):
            check_number(field, getattr(self, field), allow_zero=not positive, below=upper, allow_none=allow_none)

        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("warmup", self.warmup, WARMUPS)
        check_choice("lr_scaling", self.lr_scaling, LR_SCALING)
        number("learning_rate", positive=True)
        for field in ("batch_size", "epochs", "plateau_patience"):
            check_int(field, getattr(self, field))
        number("momentum", upper=1)
        number("rho", upper=1)
        number("epsilon")
        number("weight_decay")
        number("label_smoothing", upper=1)
        number("gradient_clip_norm", positive=True, allow_none=True)
        number("dropout", allow_none=True, upper=1)
        number("aux_loss_weight", allow_none=True)
        number("decay_factor", positive=True)
        number("min_learning_rate")
        number("warmup_epochs")
        number("warmup_learning_rate", positive=True, allow_none=True)
        number("decay_every", positive=True, allow_none=True)
        if not isinstance(self.decay_epochs, tuple) or not all(
            is_number(e) and e > 0 for e in self.decay_epochs
        ):
            fail("decay_epochs", "a tuple of positive epochs")
        if list(self.decay_epochs) != sorted(self.decay_epochs):
            fail("decay_epochs", "in increasing order")
        if self.schedule == "step" and not self.decay_epochs:
            fail("decay_epochs", "non-empty for schedule='step'")
        if self.decay_epochs and self.decay_epochs[-1] >= self.epochs:  # such a decay never happens
            fail("decay_epochs", f"before the recipe's last epoch ({self.epochs}; --epochs rescales both)")
        if self.min_learning_rate >= self.learning_rate:
            fail("min_learning_rate", f"below learning_rate ({self.learning_rate:g})")
        if self.schedule == "exponential" and self.decay_every is None:
            fail("decay_every", "set for schedule='exponential'")
        if self.warmup_epochs > 0 and self.warmup_learning_rate is None:
            fail("warmup_learning_rate", "set when warmup_epochs > 0")
        if self.warmup_until_accuracy is not None:
            value = self.warmup_until_accuracy
            if not is_number(value) or not 0 < value < 1:
                fail("warmup_until_accuracy", "a number between 0 and 1 (exclusive) or None")
            if self.warmup_epochs <= 0:
                fail("warmup_until_accuracy", "None unless warmup_epochs > 0 (its longest warm-up)")
            if self.warmup == "linear":
                fail("warmup_until_accuracy", "None with warmup='linear' (a rising rate has no early end)")

    # -- overriding -------------------------------------------------------------

    def replace(self, **overrides) -> "Recipe":
        """A copy with some fields changed; unknown fields raise with a suggestion.

        >>> recipe = get_recipe("resnet").replace(learning_rate=0.2, epochs=10)
        """
        names = [f.name for f in dataclasses.fields(self)]
        for key in overrides:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=3)
                hint = f" Did you mean: {', '.join(close)}?" if close else ""
                raise ValueError(
                    f"Recipe has no field '{key}'.{hint} The fields are: {', '.join(names)}. "
                    f"Received: {key}={overrides[key]!r}"
                )
        if "decay_epochs" in overrides and overrides["decay_epochs"] is not None:
            value = overrides["decay_epochs"]
            overrides["decay_epochs"] = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        return dataclasses.replace(self, **overrides)

    def with_epochs(self, epochs: int) -> "Recipe":
        """The recipe for ``epochs`` epochs; the schedule is rescaled if ``rescale_schedule``.

        The decay epochs, the exponential period, the warm-up and the plateau
        patience are multiplied by ``epochs / self.epochs``, so the rate follows
        the same curve over a shorter (or longer) run.
        """
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer. Received: epochs={epochs!r}")
        if epochs == self.epochs or not self.rescale_schedule:
            return self.replace(epochs=epochs)
        ratio = epochs / self.epochs
        return self.replace(
            epochs=epochs,
            decay_epochs=tuple(round(e * ratio, 4) for e in self.decay_epochs),
            decay_every=None if self.decay_every is None else round(self.decay_every * ratio, 4),
            warmup_epochs=round(self.warmup_epochs * ratio, 4),
            plateau_patience=max(1, round(self.plateau_patience * ratio)),
        )

    def with_batch_size(self, global_batch_size: int) -> "Recipe":
        """The recipe at another global batch: rates scaled by the linear rule.

        ``learning_rate``, ``warmup_learning_rate`` and ``min_learning_rate`` are
        multiplied by ``global_batch_size / batch_size`` (unless ``lr_scaling`` is
        ``"none"``), and ``batch_size`` becomes ``global_batch_size``.

        >>> get_recipe("resnet").with_batch_size(64).learning_rate
        0.025
        """
        if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, int) or global_batch_size < 1:
            raise ValueError(
                f"The global batch size must be a positive integer. Received: global_batch_size={global_batch_size!r}"
            )
        f = 1.0 if self.lr_scaling == "none" else global_batch_size / self.batch_size
        return self.replace(
            batch_size=global_batch_size,
            learning_rate=self.learning_rate * f,
            warmup_learning_rate=None if self.warmup_learning_rate is None else self.warmup_learning_rate * f,
            min_learning_rate=self.min_learning_rate * f,
        )

    # -- the learning rate ----------------------------------------------------------

    @property
    def needs_steps_per_epoch(self) -> bool:
        """Whether the schedule changes the rate within training at fixed epochs."""
        return self.schedule in ("step", "exponential") or self.warmup_epochs > 0

    def learning_rate_schedule(self, *, steps_per_epoch=None):
        """The rate for the optimizer: a float or an `EpochSchedule` (in steps).

        A ``"plateau"`` schedule returns the initial rate as a float: the
        `keras.callbacks.ReduceLROnPlateau` of `callbacks` lowers it.
        """
        if not self.needs_steps_per_epoch:
            return self.learning_rate
        if (
            steps_per_epoch is None or isinstance(steps_per_epoch, bool)
            or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1
        ):
            raise ValueError(
                f"The '{self.name}' recipe changes the learning rate at given epochs, so "
                "it needs steps_per_epoch (the number of batches in an epoch: "
                f"ceil(examples / global batch)). Received: steps_per_epoch={steps_per_epoch!r}"
            )
        return EpochSchedule(
            initial_learning_rate=self.learning_rate,
            steps_per_epoch=steps_per_epoch,
            decay_epochs=self.decay_epochs if self.schedule == "step" else (),
            decay_every=self.decay_every if self.schedule == "exponential" else None,
            decay_factor=self.decay_factor,
            warmup_epochs=self.warmup_epochs,
            warmup_learning_rate=self.warmup_learning_rate or 0.0,
            linear_warmup=self.warmup == "linear",
            min_learning_rate=self.min_learning_rate,
            adaptive_warmup=self.warmup_until_accuracy is not None,
        )

    def make_optimizer(self, *, steps_per_epoch=None):
        """The recipe's Keras optimizer (weight decay is not in it: see the module doc)."""
        lr = self.learning_rate_schedule(steps_per_epoch=steps_per_epoch)
        clip = {} if self.gradient_clip_norm is None else {"global_clipnorm": self.gradient_clip_norm}
        if self.optimizer == "sgd":
            return keras.optimizers.SGD(
                learning_rate=lr, momentum=self.momentum, nesterov=self.nesterov, **clip
            )
        return keras.optimizers.RMSprop(
            learning_rate=lr, rho=self.rho, momentum=self.momentum, epsilon=self.epsilon, **clip
        )

    def callbacks(self):
        """The callbacks the schedule needs in ``fit``.

        `ReduceLROnPlateau` for ``"plateau"``; `WarmupUntilAccuracy` when
        ``warmup_until_accuracy`` is set. `kerasnets.training.compile_model` returns
        the recipe with ``plateau_monitor`` named for the model
        (``"val_main_accuracy"`` with auxiliary heads).
        """
        result = []
        if self.warmup_until_accuracy is not None and self.warmup_epochs > 0:
            monitor = "accuracy"
            if self.plateau_monitor.endswith("_accuracy") and self.plateau_monitor.startswith("val_"):
                monitor = self.plateau_monitor[len("val_"):]  # "main_accuracy" with heads
            result.append(WarmupUntilAccuracy(self.warmup_until_accuracy, monitor=monitor))
        if self.schedule != "plateau":
            return result
        monitor = self.plateau_monitor
        return result + [
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor,
                mode="min" if monitor.endswith("loss") else "max",
                factor=self.decay_factor,
                patience=self.plateau_patience,
                min_lr=self.min_learning_rate,
                verbose=1,
            )
        ]

    # -- reading and writing ------------------------------------------------------------

    def to_dict(self) -> dict:
        """A JSON-friendly dict (``Recipe.from_dict`` reads it back)."""
        data = dataclasses.asdict(self)
        data["decay_epochs"] = list(self.decay_epochs)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Recipe":
        data = dict(data)
        data["decay_epochs"] = tuple(data.get("decay_epochs", ()))
        return cls(**data)

    def describe_schedule(self) -> str:
        """One line: the rate and how it changes."""
        text = f"lr {self.learning_rate:.4g}"
        if self.schedule == "step":
            text += f", x{self.decay_factor:g} at epochs " + ", ".join(f"{e:.3g}" for e in self.decay_epochs)
        elif self.schedule == "exponential":
            text += f", x{self.decay_factor:g} every {self.decay_every:.3g} epochs"
        elif self.schedule == "plateau":
            text += (f", x{self.decay_factor:g} when {self.plateau_monitor} stalls for "
                     f"{self.plateau_patience} epochs")
        if self.warmup_epochs and self.warmup_until_accuracy is not None:
            text += (f" (warm-up at {self.warmup_learning_rate:.4g} until the training accuracy "
                     f"reaches {self.warmup_until_accuracy:g}, at most {self.warmup_epochs:g} epochs)")
        elif self.warmup_epochs and self.warmup == "linear":
            text += (f" (linear warm-up from {self.warmup_learning_rate:.4g} over the first "
                     f"{self.warmup_epochs:g} epochs)")
        elif self.warmup_epochs:
            text += f" (warm-up at {self.warmup_learning_rate:.4g} for {self.warmup_epochs:g} epochs)"
        return text

    def describe(self) -> str:
        """A readable summary of every setting, for the CLI and the docs."""
        opt = self.optimizer.upper() if self.optimizer == "sgd" else "RMSProp"
        if self.optimizer == "sgd":
            opt += f" momentum {self.momentum:g}" + (" (Nesterov)" if self.nesterov else "")
        else:
            opt += f" rho {self.rho:g}, momentum {self.momentum:g}, epsilon {self.epsilon:g}"
        lines = [
            f"recipe {self.name}: {self.paper}",
            f"  optimizer      {opt}",
            f"  learning rate  {self.describe_schedule()}",
            f"  batch size     {self.batch_size} (global; the rate scales {self.lr_scaling}ly "
            "with it)" if self.lr_scaling == "linear" else f"  batch size     {self.batch_size}",
            f"  weight decay   {self.weight_decay:g} (L2 in the loss, kernels only)",
            f"  epochs         {self.epochs}",
        ]
        extras = [
            ("label smoothing", self.label_smoothing or None),
            ("gradient clip", self.gradient_clip_norm),
            ("dropout", self.dropout),
            ("aux loss weight", self.aux_loss_weight),
        ]
        lines += [f"  {k:<15}{v:g}" for k, v in extras if v is not None]
        if self.notes:
            lines.append(f"  notes          {self.notes}")
        return "\n".join(lines)


@keras.saving.register_keras_serializable(package="kerasnets")
class EpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate set by the epoch (``step / steps_per_epoch``), staircase.

    ``lr = initial_learning_rate * decay_factor ** n`` where ``n`` counts the
    ``decay_epochs`` already reached, or ``floor(epoch / decay_every)``; the
    first ``warmup_epochs`` use ``warmup_learning_rate`` or, with
    ``linear_warmup``, a rate rising linearly (step by step) from
    ``warmup_learning_rate`` towards the schedule's rate, reached at
    ``warmup_epochs``; never below
    ``min_learning_rate``. Fractional epochs are allowed.

    With ``adaptive_warmup``, the warm-up also ends at ``warmup_end_step``, a
    variable that `kerasnets.training.callbacks.WarmupUntilAccuracy` sets when
    the training accuracy is reached (He et al.'s ResNet-110 warm-up); until
    then it lasts ``warmup_epochs`` at most.

    Example:

    >>> schedule = EpochSchedule(0.1, steps_per_epoch=390, decay_epochs=(91, 136))
    >>> float(schedule(390 * 100))  # epoch 100: divided by 10 once
    0.009999999776482582
    """

    def __init__(
        self, initial_learning_rate, steps_per_epoch, decay_epochs=(), decay_every=None,
        decay_factor=0.1, warmup_epochs=0.0, warmup_learning_rate=0.0, min_learning_rate=0.0,
        adaptive_warmup=False, warmup_end_step=None, linear_warmup=False,
    ):
        self.initial_learning_rate = float(initial_learning_rate)
        self.steps_per_epoch = int(steps_per_epoch)
        self.decay_epochs = tuple(float(e) for e in decay_epochs)
        self.decay_every = None if decay_every is None else float(decay_every)
        self.decay_factor = float(decay_factor)
        self.warmup_epochs = float(warmup_epochs)
        self.warmup_learning_rate = float(warmup_learning_rate)
        self.min_learning_rate = float(min_learning_rate)
        self.adaptive_warmup = bool(adaptive_warmup)
        self.linear_warmup = bool(linear_warmup)
        if self.linear_warmup and self.adaptive_warmup:
            raise ValueError("A linear warm-up cannot also be adaptive. "
                             "Received: linear_warmup=True, adaptive_warmup=True")
        self.warmup_end_step = None
        if self.adaptive_warmup:
            # float32 holds every step count below 2**24 exactly.
            end = float("inf") if warmup_end_step is None else float(warmup_end_step)
            self.warmup_end_step = keras.Variable(end, dtype="float32", trainable=False,
                                                  name="warmup_end_step")

    @property
    def warmup_ended_at(self):
        """The step at which an adaptive warm-up ended, or ``None``."""
        if self.warmup_end_step is None:
            return None
        value = float(keras.ops.convert_to_numpy(self.warmup_end_step))
        return None if math.isinf(value) else int(value)

    def end_warmup(self, step):
        """Ends an adaptive warm-up at ``step`` (the rate of steps >= ``step`` is the schedule's)."""
        if self.warmup_end_step is None:
            raise ValueError("end_warmup needs an EpochSchedule built with adaptive_warmup=True. "
                             f"Received: adaptive_warmup={self.adaptive_warmup}")
        self.warmup_end_step.assign(float(step))

    def _decayed(self, epoch):
        ops = keras.ops
        if self.decay_every is not None:
            n = ops.floor(ops.divide(epoch, self.decay_every))
        else:
            n = ops.zeros((), "float32")
            for boundary in self.decay_epochs:
                n = n + ops.cast(ops.greater_equal(epoch, boundary), "float32")
        return self.initial_learning_rate * ops.power(self.decay_factor, n)

    def __call__(self, step):
        ops = keras.ops
        epoch = ops.divide(ops.cast(step, "float32"), float(self.steps_per_epoch))
        lr = self._decayed(epoch)
        if self.warmup_epochs > 0:
            warm = ops.less(epoch, self.warmup_epochs)
            if self.warmup_end_step is not None:
                warm = ops.logical_and(warm, ops.less(ops.cast(step, "float32"), self.warmup_end_step))
            start = self.warmup_learning_rate
            if self.linear_warmup:
                start = start + (lr - start) * ops.divide(epoch, self.warmup_epochs)
            lr = ops.where(warm, start, lr)
        return ops.maximum(lr, self.min_learning_rate)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "decay_epochs": list(self.decay_epochs),
            "decay_every": self.decay_every,
            "decay_factor": self.decay_factor,
            "warmup_epochs": self.warmup_epochs,
            "warmup_learning_rate": self.warmup_learning_rate,
            "min_learning_rate": self.min_learning_rate,
            "adaptive_warmup": self.adaptive_warmup,
            "warmup_end_step": self.warmup_ended_at,
            "linear_warmup": self.linear_warmup,
        }


# ---------------------------------------------------------------------------
# The recipes. Numbers are the papers'; `notes` says where a paper is silent
# and which public reference filled the gap.
# ---------------------------------------------------------------------------

_ALEXNET = Recipe(
    name="alexnet",
    paper="Krizhevsky et al., ImageNet Classification with Deep CNNs, NIPS 2012, section 5",
    optimizer="sgd", learning_rate=0.01, batch_size=128, epochs=90, momentum=0.9,
    weight_decay=5e-4, dropout=0.5, schedule="plateau", decay_factor=0.1,
    plateau_monitor="val_accuracy", plateau_patience=5, min_learning_rate=1e-5,
    notes="The paper divides the rate by 10 'when the validation error rate stopped "
          "improving' (three times in ~90 epochs); the patience of 5 epochs and the floor "
          "(three divisions) are ours.",
)
_VGG = Recipe(
    name="vgg",
    paper="Simonyan & Zisserman, Very Deep Convolutional Networks, ICLR 2015, section 3.1",
    optimizer="sgd", learning_rate=0.01, batch_size=256, epochs=74, momentum=0.9,
    weight_decay=5e-4, dropout=0.5, schedule="plateau", decay_factor=0.1,
    plateau_monitor="val_accuracy", plateau_patience=5, min_learning_rate=1e-5,
    notes="Divided by 10 'when the validation set accuracy stopped improving', three times "
          "in 370K iterations (74 epochs); the patience of 5 epochs is ours.",
)
_GOOGLENET = Recipe(
    name="googlenet",
    paper="Szegedy et al., Going Deeper with Convolutions, CVPR 2015, sections 5-6",
    optimizer="sgd", learning_rate=0.01, batch_size=32, epochs=60, momentum=0.9,
    weight_decay=2e-4, dropout=0.4, aux_loss_weight=0.3, schedule="exponential",
    decay_every=8, decay_factor=0.96,
    notes="The paper gives momentum 0.9, 'decreasing the learning rate by 4% every 8 "
          "epochs' and the 0.3 auxiliary weight; it is silent on the initial rate, the "
          "batch, the epochs and the weight decay, taken from BVLC's Caffe reproduction "
          "(base_lr 0.01, batch 32, weight_decay 2e-4, 2.4M iterations = 60 epochs).",
)
_INCEPTION_V3 = Recipe(
    name="inception_v3",
    paper="Szegedy et al., Rethinking the Inception Architecture, CVPR 2016, section 8",
    optimizer="rmsprop", learning_rate=0.045, batch_size=32, epochs=100, momentum=0.9,
    rho=0.9, epsilon=1.0, weight_decay=4e-5, label_smoothing=0.1, gradient_clip_norm=2.0,
    aux_loss_weight=0.4, schedule="exponential", decay_every=2, decay_factor=0.94,
    notes="RMSProp decay 0.9, epsilon 1.0, lr 0.045 x0.94 every 2 epochs, clipping 2.0 "
          "(global norm), label smoothing 0.1, batch 32, 100 epochs are the paper's; "
          "RMSProp momentum 0.9, weight decay 4e-5 and the auxiliary weight 0.4 come from "
          "the authors' released TensorFlow training code (the paper does not state them).",
)
_RESNET = Recipe(
    name="resnet",
    paper="He et al., Deep Residual Learning for Image Recognition, CVPR 2016, section 3.4",
    optimizer="sgd", learning_rate=0.1, batch_size=256, epochs=120, momentum=0.9,
    weight_decay=1e-4, schedule="step", decay_epochs=(30, 60, 90), decay_factor=0.1,
    notes="The paper divides by 10 'when the error plateaus' over 60e4 iterations "
          "(120 epochs at batch 256); the fixed points 30/60/90 are the usual reproduction "
          "of that schedule (fb.resnet.torch, Goyal et al. 2017). No dropout.",
)
_RESNET_CIFAR = Recipe(
    name="resnet_cifar",
    paper="He et al., Deep Residual Learning for Image Recognition, CVPR 2016, section 4.2",
    optimizer="sgd", learning_rate=0.1, batch_size=128, epochs=182, momentum=0.9,
    weight_decay=1e-4, schedule="step", decay_epochs=(91, 136), decay_factor=0.1,
    notes="lr 0.1 divided by 10 at 32k and 48k iterations, stop at 64k, batch 128 on the "
          "45k training images: epochs 91, 136 and 182. ResNet-110 warms up at 0.01 for "
          "about 400 iterations (~1 epoch; recipe_for('resnet110')).",
)

RECIPES: dict[str, Recipe] = {
    r.name: r for r in (_ALEXNET, _VGG, _GOOGLENET, _INCEPTION_V3, _RESNET, _RESNET_CIFAR)
}

# ModelInfo.family -> recipe name. Inception v2 is the v3 paper's row, same recipe.
_FAMILY_RECIPES = {
    "alexnet": "alexnet",
    "vgg": "vgg",
    "googlenet": "googlenet",
    "inception": "inception_v3",
    "inception_v2": "inception_v3",
    "inception_v3": "inception_v3",
    "resnet": "resnet",
    "resnet_cifar": "resnet_cifar",
}
# Per-model departures from the family's recipe, from the same paper.
_MODEL_OVERRIDES = {
    # "we use 0.01 to warm up the training until the training error is below 80%
    # (about 400 iterations), and then go back to 0.1" (section 4.2).
    "resnet110": dict(warmup_epochs=1.0, warmup_learning_rate=0.01),
}


def list_recipes() -> list[str]:
    """The recipe names: ``['alexnet', 'googlenet', 'inception_v3', 'resnet', ...]``."""
    return sorted(RECIPES)


def get_recipe(name: str | Recipe, **overrides) -> Recipe:
    """The recipe ``name`` (see `list_recipes`), with ``overrides`` applied.

    >>> get_recipe("resnet_cifar", epochs=5).epochs
    5
    """
    if isinstance(name, Recipe):
        recipe = name
    elif isinstance(name, str) and name.lower() in RECIPES:
        recipe = RECIPES[name.lower()]
    else:
        close = difflib.get_close_matches(str(name).lower(), list(RECIPES), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown recipe '{name}'.{hint} The recipes are: {', '.join(list_recipes())}. "
            f"Received: recipe={name!r}"
        )
    return recipe.replace(**overrides) if overrides else recipe


def recipe_for(model: Any, **overrides) -> Recipe:
    """The recipe of a registered model name, or of a model built by kerasnets.

    The model's family (``kerasnets.get_model_info(name).family``) picks the recipe;
    ``resnet110`` adds its warm-up. A built model is known by its `kerasnets.model_card`
    (never by its ``name``: a renamed model gets its architecture's recipe).

    >>> recipe_for("resnet20").name
    'resnet_cifar'
    """
    if isinstance(model, str):
        entry = get_entry(model)
    else:
        card = model_card(model) if isinstance(model, keras.Model) else None
        if card is None:
            raise ValueError(
                "Cannot tell which recipe fits this model: it carries no kerasnets model card "
                "(kerasnets builders attach one; see kerasnets.model_card). Pass recipe= one of "
                f"{', '.join(list_recipes())}. Received: model.name={getattr(model, 'name', None)!r}"
            )
        entry = get_entry(card.model)
    family = entry.info.family
    if family not in _FAMILY_RECIPES:
        raise ValueError(
            f"No recipe is known for the '{family}' family of {entry.name}. Pass recipe= "
            f"one of {', '.join(list_recipes())}. Received: model={entry.name!r}"
        )
    recipe = RECIPES[_FAMILY_RECIPES[family]]
    extra = _MODEL_OVERRIDES.get(entry.name, {})
    return recipe.replace(**{**extra, **overrides}) if (extra or overrides) else recipe

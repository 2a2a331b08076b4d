"""What the Inception families share: width tables with overrides, and their heads.

A network's widths are records (NamedTuples with the paper's column names) in a
table keyed by module name (docs/architecture.md, Tables). `resolve_widths` applies
a user's ``stage_widths`` overrides and the ``width_multiplier`` to such a table,
validating everything before a layer is built.
"""

from __future__ import annotations

import functools
from typing import Mapping, NamedTuple

import keras

from kerasnets._validate import check_bool, check_instance, check_int, check_keys, check_number, fail
from kerasnets.models._application import scale_width, validate_width_multiplier
from kerasnets.models._multi_output import with_named_outputs

__all__ = ["resolve_widths", "dropout_top", "aux_model_class", "check_aux_args"]


def _override(row: NamedTuple, value, key, model_name):
    fields = type(row)._fields
    if isinstance(value, type(row)):
        return value
    if isinstance(value, Mapping):
        check_keys(f"stage_widths['{key}']", dict(value), fields, what=f"fields of {type(row).__name__}",
                   context=model_name)
        return row._replace(**value)
    if (
        isinstance(value, (list, tuple))
        and not hasattr(value, "_fields")  # a record of another kind of module
        and len(value) == len(fields)
    ):
        return type(row)(*value)
    fail(f"stage_widths['{key}']", f"a {type(row).__name__}, a dict of some of its fields "
         f"{list(fields)} or {len(fields)} integers", value, context=model_name)


def resolve_widths(table: Mapping[str, NamedTuple], stage_widths, width_multiplier, model_name):
    """The table with ``stage_widths`` overrides applied, every width times ``width_multiplier``.

    Args:
        table: ``{module name: record}``; a field may be ``None`` (no such layer).
        stage_widths: ``None`` or ``{module name: record | {field: width} | tuple}``;
            a dict replaces only the fields it names.
        width_multiplier: scales every width (rounded, at least 1).
        model_name: for error messages.

    Returns:
        A new ``{module name: record}``.
    """
    overrides = {} if stage_widths is None else stage_widths
    check_instance("stage_widths", overrides, Mapping, f"a dict keyed by module name ({', '.join(table)})",
                   context=model_name)
    check_keys("stage_widths", overrides, table, what="modules", context=model_name)
    rows = {}
    for key, row in table.items():
        if key in overrides:
            row = _override(row, overrides[key], key, model_name)
        for field, value in zip(row._fields, row):
            if value is None and table[key]._asdict()[field] is None:
                continue
            check_int(f"stage_widths['{key}'].{field}", value, context=model_name)
        rows[key] = row
    validate_width_multiplier(width_multiplier, model_name,
                              min(v for row in rows.values() for v in row if v is not None))
    return {key: type(row)(*(None if v is None else scale_width(v, width_multiplier) for v in row))
            for key, row in rows.items()}


def dropout_top(rate):
    """The family's classifier: global average pooling, dropout, the classifier."""

    def top(features, head):
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features)
        x = keras.layers.Dropout(rate, name="top_dropout")(x)
        return head.classifier(x)

    return top


def check_aux_args(aux_classifiers, aux_loss_weight, include_top, model_name):
    """Resolves ``aux_classifiers`` (``None``: the family default) and validates both."""
    check_bool("aux_classifiers", aux_classifiers, context=model_name)
    if aux_classifiers and not include_top:
        fail("aux_classifiers", f"False when include_top=False (the auxiliary classifiers of {model_name} "
             "are classifiers: they need include_top=True; aux_classifiers=False makes a feature extractor)",
             aux_classifiers, received=f"aux_classifiers=True, include_top={include_top!r}")
    check_number("aux_loss_weight", aux_loss_weight, allow_zero=True, context=model_name)
    return aux_classifiers


def aux_model_class(aux_loss_weight):
    """``build_application(model_class=...)``: dict outputs make an `AuxiliaryClassifierModel`."""
    return functools.partial(with_named_outputs, aux_loss_weight=aux_loss_weight)

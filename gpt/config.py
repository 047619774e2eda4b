"""What GPTConfig and TrainConfig share: an error that names the field it is about, and a type check of every
field against its annotation, so `GPTConfig(block_size=2.5)` or a string from a JSON file fails at once, not
deep inside NumPy."""
import math
import numbers
from dataclasses import fields

_KINDS = {  # annotation -> (test, how the message names it); bool is not a number here, though Python says it is
    int: (lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool), "an integer"),
    float: (lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool), "a number"),
    bool: (lambda v: isinstance(v, bool), "True or False"),
    str: (lambda v: isinstance(v, str), "a string"),
}


class ConfigError(ValueError):
    """A config field with a wrong value: `field` is its name, `problem` the rest of the sentence, so that a
    command line can name its flag instead (`--seed: must be >= 0, got -1`)."""

    def __init__(self, field, problem):
        super().__init__(f"{field} {problem}")
        self.field, self.problem = field, problem


def check_types(config):
    """ConfigError for the first field whose value does not have its annotated type (int, float, bool, str)."""
    for f in fields(config):
        value = getattr(config, f.name)
        test, kind = _KINDS[f.type]
        if not test(value):
            raise ConfigError(f.name, f"must be {kind}, got {value!r}")


def check_range(config, name, low, high=None, low_open=False, high_open=False):
    """ConfigError unless the field is finite and low <= value <= high (< where open; no high: no upper bound)."""
    value = getattr(config, name)
    if not math.isfinite(value):
        raise ConfigError(name, f"must be a finite number, got {value}")
    above = value > low if low_open else value >= low
    below = high is None or (value < high if high_open else value <= high)
    if not (above and below):
        if high is None:
            wanted = f"> {low}" if low_open else f">= {low}"
        else:
            wanted = "in " + ("(" if low_open else "[") + f"{low}, {high}" + (")" if high_open else "]")
        raise ConfigError(name, f"must be {wanted}, got {value}")

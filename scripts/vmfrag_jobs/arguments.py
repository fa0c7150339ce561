"""argparse types shared by every job's options: one place for "a number in a range"."""
import argparse


def _bounded(convert, noun, lo, hi):
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"'{text}' is not a {noun} from {lo} to {hi}")
        return value
    parse.__name__ = "number"
    return parse


def bounded_int(lo, hi):
    """An argparse type: a whole number in [lo, hi], the range stated in the error."""
    return _bounded(lambda text: int(text, 10), "whole number", lo, hi)


def bounded_float(lo, hi):
    """An argparse type: a number in [lo, hi], the range stated in the error."""
    return _bounded(float, "number", lo, hi)

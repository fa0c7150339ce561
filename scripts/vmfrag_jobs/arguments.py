"""argparse types shared by every job's options: one place for "a whole number in a range"."""
import argparse


def bounded_int(lo, hi):
    """An argparse type: a whole number in [lo, hi], the range stated in the error."""
    def parse(text):
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number from {lo} to {hi}")
        return value
    parse.__name__ = "number"
    return parse


def bounded_float(lo, hi):
    """An argparse type: a number in [lo, hi]."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number from {lo} to {hi}")
        return value
    parse.__name__ = "number"
    return parse

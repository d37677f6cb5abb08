from dataclasses import dataclass


@dataclass
class CompareResult:
    pass


def compare_runs() -> None: ...

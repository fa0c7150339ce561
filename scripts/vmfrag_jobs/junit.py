"""JUnit XML for CI systems (GitLab, Jenkins, GitHub test reporters), from a ci or nightly run's
records: one <testsuite> per step, one <testcase> per unit. A bug is a <failure>; a unit that could
not run its tool is an <error>; a unit the budget left out is <skipped>; a finding is a result, so
its test case passes and names the finding in <system-out> (unless --fail-on-finding made it a
failure). The schema is the one those tools read (testsuites > testsuite > testcase)."""
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from .results.writing import write_atomically


@dataclass
class Case:
    name: str
    seconds: float = 0.0
    failure: str = None   # a bug: the message
    error: str = None     # the unit could not run
    skipped: str = None   # why it did not run
    output: str = None    # shown by CI tools beside the case


@dataclass
class Suite:
    name: str
    cases: list = field(default_factory=list)

    def add(self, *args, **kw):
        self.cases.append(Case(*args, **kw))


def document(suites, name="vmfrag"):
    root = ET.Element("testsuites", name=name)
    for s in suites:
        el = ET.SubElement(root, "testsuite", name=s.name, tests=str(len(s.cases)),
                           failures=str(sum(c.failure is not None for c in s.cases)),
                           errors=str(sum(c.error is not None for c in s.cases)),
                           skipped=str(sum(c.skipped is not None for c in s.cases)),
                           time=f"{sum(c.seconds for c in s.cases):.3f}")
        for c in s.cases:
            case = ET.SubElement(el, "testcase", classname=f"vmfrag.{s.name}", name=c.name, time=f"{c.seconds:.3f}")
            if c.failure is not None:
                ET.SubElement(case, "failure", message=c.failure.splitlines()[0][:500] if c.failure else "").text = c.failure
            if c.error is not None:
                ET.SubElement(case, "error", message=c.error.splitlines()[0][:500] if c.error else "").text = c.error
            if c.skipped is not None:
                ET.SubElement(case, "skipped", message=c.skipped)
            if c.output:
                ET.SubElement(case, "system-out").text = c.output
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write(path, suites, name="vmfrag"):
    write_atomically(path, document(suites, name))

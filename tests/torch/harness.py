"""Shared by the test harnesses (conform, emitpy, dot): one PASS/FAIL/SKIP
line per check and the closing `N passed, N failed[, N skipped]` line."""


class Result(object):
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def ok(self, spec, check, detail=''):
        self.passed += 1
        print('PASS %s: %s%s' % (spec, check, (' (%s)' % detail) if detail else ''))

    def fail(self, spec, check, why):
        self.failed += 1
        print('FAIL %s: %s: %s' % (spec, check, str(why).rstrip().replace('\n', '\n    ')))

    def skip(self, spec, check, why):
        self.skipped += 1
        print('SKIP %s: %s: %s' % (spec, check, why))

    def summary(self):
        """Prints the closing line; returns the exit status (1 if anything failed)."""
        line = '%d passed, %d failed' % (self.passed, self.failed)
        if self.skipped:
            line += ', %d skipped' % self.skipped
        print(line)
        return 1 if self.failed else 0

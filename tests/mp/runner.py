# Runs one test function of a MicroPython test module:
#   micropython -X heapsize=190K tests/mp/runner.py MODULE TEST
# (cwd = the repository root). Prints @@PASS, or the traceback and @@FAIL.
import sys

# The pen's modules as compiled bytecode (tests/conftest.py builds build/mp-test/), as on the
# pen; the sources' folder after it for the simulator and the test modules.
sys.path[:] = ["build/mp-test", "", "tests/mp", "sim", ".frozen"]

# The virtual board goes in before the test module imports machine, rp2, time or select.
import simrt  # noqa: E402

simrt.install(realtime=False)

_mod, _test = sys.argv[1], sys.argv[2]
try:
    m = __import__(_mod)
    getattr(m, _test)()
except Exception as e:  # noqa: BLE001
    sys.print_exception(e)
    print("@@FAIL")
    sys.exit(1)
print("@@PASS")

"""The controlled stop on the whole application (the real needle drive on the virtual board),
not on a fake: the ramp down, ARMED at its end, and a second stop that coasts at once."""

# mp-timeout: 120
# mp-heap: 576K

from app_rig import AppRig
from mphelp import SIM, check, info, req


@req("PS-6")
def test_stop_is_a_ramp_to_armed_and_a_second_stop_coasts_at_once():
    """PS-6: at 150 Hz under skin load, `stop` puts the pen in STOPPING while the true stroke
    rate ramps down (still turning 40 ms later, slower than before, not cut), ending ARMED with
    the bridge off within 400 ms; in a second run, a second `stop` during the ramp turns the
    bridge off within 2 ms."""
    r = AppRig()

    async def scenario(r):
        await r.running(hz=150, load=0.8)
        r.ok("stop")
        check(r.state() == "STOPPING", r.state())
        t0 = SIM.now
        await r.sleep(40)
        hz40 = r.true_hz()
        check(r.state() == "STOPPING" and r.motor_driven(), "cut, not ramped")
        check(20 < hz40 < 145, "40 ms into the ramp: %.1f Hz" % hz40)
        await r.until(lambda: r.state() == "ARMED", 400, "ARMED after the ramp")
        ms = (SIM.now - t0) // 1000
        check(not r.motor_driven(), "bridge still on when ARMED")
        info("stop ramp: %.0f Hz after 40 ms, ARMED after %d ms" % (hz40, ms))
        r.ok("run 150")
        await r.until(lambda: abs(r.true_hz() - 150) < 4.5, 1000, "rate reached again")
        r.ok("stop")
        await r.sleep(20)
        check(r.state() == "STOPPING" and r.motor_driven(), "second run: not ramping")
        t1 = SIM.now
        r.cmd("stop")
        await r.until(lambda: not r.motor_driven(), 2, "bridge off after the second stop")
        info("second stop: bridge off after %d us" % (SIM.now - t1))

    r.run(scenario)
    r.close()

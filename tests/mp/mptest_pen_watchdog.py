"""Liveness (firmware/supervisor.py, drivers/watchdog.py): the hardware watchdog is fed only
while every task reports in; a hung task stops the feeding, the pen is made safe at once and
the (simulated) RP2040 watchdog resets it."""

import asyncio

import machine
from mphelp import SIM, check, raises, req

from drivers.watchdog import Watchdog
from firmware.supervisor import Supervisor


def _sup(timeout_ms=1000):
    hung = []
    wd = Watchdog(lambda ms: machine.WDT(timeout=ms), timeout_ms=timeout_ms)
    sup = Supervisor(wd, on_hang=hung.append)
    return sup, wd, hung


@req("PS-11")
def test_fed_while_all_tasks_report_in():
    """PS-11: with every task alive the watchdog is fed and never resets the pen."""
    sup, wd, hung = _sup()

    async def worker(checkin, period):
        while True:
            checkin()
            await asyncio.sleep_ms(period)

    async def main():
        asyncio.create_task(worker(sup.checker("ui", 100), 5))
        asyncio.create_task(worker(sup.checker("slow", 1500), 700))
        asyncio.create_task(sup.run())
        await asyncio.sleep_ms(20_000)

    asyncio.run(main())
    feeds = SIM.wdt.feeds  # the virtual board's watchdog counts them
    check(not hung and feeds >= 70, "fed %d times" % feeds)


@req("PS-11")
def test_hung_task_stops_feeding_and_watchdog_resets():
    """PS-11: one task stops reporting in (it awaits forever) while the others run: the
    supervisor calls on_hang (safe state) and stops feeding; the watchdog resets the pen within
    its timeout after the last feed."""
    sup, wd, hung = _sup(timeout_ms=1000)
    t_hang = 3000

    async def ok_task(checkin):
        while True:
            checkin()
            await asyncio.sleep_ms(5)

    async def hanging_task(checkin):
        while SIM.now < t_hang * 1000:
            checkin()
            await asyncio.sleep_ms(10)
        await asyncio.Event().wait()  # stuck forever

    async def main():
        asyncio.create_task(ok_task(sup.checker("ui", 200)))
        asyncio.create_task(hanging_task(sup.checker("depth", 200)))
        await sup.run()

    e = raises(machine.SimReset, asyncio.run, main())
    check(e.cause == machine.WDT_RESET, "a watchdog reset")
    check(hung == ["depth"], repr(hung))
    t = SIM.now // 1000
    check(t_hang < t <= t_hang + 200 + 250 + 1000 + 10, "reset at %d ms" % t)
    asyncio.new_event_loop()


@req("PS-18")
def test_hand_over_keeps_feeding_at_the_repl():
    """PS-18: leaving for the REPL (Ctrl-C) hands the watchdog to a timer, so an intentional
    stop does not end in a reset."""
    sup, wd, hung = _sup(timeout_ms=500)
    wd.start()
    wd.hand_over(lambda ms, cb: machine.Timer(-1, period=ms, callback=cb, hard=False))
    SIM.advance(5_000_000)  # a reset would raise SimReset here
    check(SIM.reset_requested is None, "reset requested: %r" % SIM.reset_requested)
    since_ms = (SIM.now - SIM.wdt.last) // 1000
    check(since_ms < 500, "the timer stopped feeding: last feed %d ms ago" % since_ms)

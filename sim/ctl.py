"""Side channel of the virtual pen: line commands from the supervisor's pipe, answered between
plant steps (every 5 ms of virtual time), so a button press lands at a definite virtual time."""

import simrt

_PERIOD_US = 5000


class _Ctl:
    def __init__(self, sim, pen, fd_in, fd_out):
        self.sim = sim
        self.pen = pen
        self.fin = open("/dev/fd/%d" % fd_in, "rb")
        self.fout = open("/dev/fd/%d" % fd_out, "wb")
        self.poll = simrt.real_select.poll()
        self.poll.register(self.fin, simrt.real_select.POLLIN)
        self.next = 0

    def hook(self, now):
        if now < self.next:
            return
        self.next = now + _PERIOD_US
        while self.poll.poll(0):
            line = self.fin.readline()
            if not line:
                self.poll.unregister(self.fin)
                self.sim.tick_hooks.remove(self.hook)
                return
            reply = self.pen.ctl(line.decode().strip())
            self.fout.write((reply + "\n").encode())


def attach(sim, pen, fd_in, fd_out):
    c = _Ctl(sim, pen, fd_in, fd_out)
    sim.tick_hooks.append(c.hook)
    return c

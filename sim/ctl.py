"""Side channel of the virtual pen: line commands from the supervisor's pipe, answered between
plant steps (every 5 ms of virtual time), so a button press lands at a definite virtual time.

A command may answer later in virtual time: `VirtualPen.ctl` then returns (T_US, REPLY) and the
reply is written once the virtual clock reaches T_US (`press` answers after the pen has seen the
whole gesture, `wait MS` after MS of the pen's time). Commands are taken one at a time: the next
is read only after the previous one is answered."""

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
        self.due = None  # virtual time at which the pending reply is written
        self.pending = None

    def _answer(self, reply):
        self.fout.write((reply + "\n").encode())

    def hook(self, now):
        if self.pending is not None:
            if now < self.due:
                return
            self._answer(self.pending)
            self.pending = None
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
            if isinstance(reply, tuple):
                self.due, self.pending = reply
                return
            self._answer(reply)


def attach(sim, pen, fd_in, fd_out):
    c = _Ctl(sim, pen, fd_in, fd_out)
    sim.tick_hooks.append(c.hook)
    return c

"""Behavioural model of `drivers/stroke_pio.py`'s PIO program `stroke_period`.

The program counts microseconds between hall rising edges in X (down from LIMIT, which the
driver puts into the TX FIFO once) and pushes X at each rising edge, or 0 when the period is
unknown (first edge, or a gap longer than LIMIT). The model takes the plant's interpolated edge
times and pushes the same words: word = LIMIT - (period_us - OVERHEAD_US), or 0.
tests/host/test_pio_hall.py checks the program's instruction words against this arithmetic in
an instruction-level emulator."""

PROGRAM = "stroke_period"
OVERHEAD_US = 2  # the program's 4-cycle edge path at 2 MHz


class StrokePeriodModel:
    def __init__(self, sm, motor):
        self.sm = sm
        self.motor = motor
        self.limit = None
        self.last_edge = None  # µs of the previous edge, None = not synchronised
        self.edges = 0
        self.dropped = 0
        motor.edge_listeners.append(self.on_edge)

    def detach(self):
        if self.on_edge in self.motor.edge_listeners:
            self.motor.edge_listeners.remove(self.on_edge)

    def restart(self):
        # SM_RESTART leaves X and the program counter alone; the driver re-inits to resync.
        pass

    def step(self, now, dt):
        if self.limit is None:
            self.limit = self.sm.model_pull()  # `pull(block)`: LIMIT from the driver

    def on_edge(self, t_us):
        if not self.sm.running or self.sm.model is not self:
            self.last_edge = None  # a stopped machine loses its count
            return
        if self.limit is None:
            self.limit = self.sm.model_pull()
            if self.limit is None:
                return  # still blocked in `pull`
        self.edges += 1
        word = 0
        if self.last_edge is not None:
            counts = t_us - self.last_edge - OVERHEAD_US
            if 0 <= counts < self.limit:
                word = self.limit - counts
        self.last_edge = t_us
        if not self.sm.model_push(word):
            self.dropped += 1  # `push(noblock)` on a full FIFO


_by_sm = {}


def register(models, pen):
    def factory(sm):
        old = _by_sm.get(sm.id)
        if old is not None:
            old.detach()
        m = StrokePeriodModel(sm, pen.motor)
        _by_sm[sm.id] = m
        return m

    models[PROGRAM] = factory

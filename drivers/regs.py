"""RP2040 peripheral register addresses (RP2040 datasheet, chapter 4) for the drivers that hand
the control tick a register to read or write directly (a viper `ptr32` access: one load or store
instead of a call into machine.PWM or rp2.StateMachine).

`address()` is the only way a driver gets one: on the chip it is the register itself; on the
virtual pen the `machine` module answers with the word of its simulated register file that the
plant reads (`machine.register_address`), so the same driver code runs on both."""

import machine

PWM_BASE = 0x40050000  # 8 slices of 0x14: CSR 0x00, DIV 0x04, CTR 0x08, CC 0x0c, TOP 0x10
PWM_STRIDE = 0x14
PWM_CC = 0x0C  # channel A in bits 0..15, B in 16..31
ADC_BASE = 0x4004C000
ADC_CS = 0x00  # EN 0, TS_EN 1, START_ONCE 2, READY 8, AINSEL 12..14; RESULT at 0x04
PIO_BASE = (0x50200000, 0x50300000)
PIO_FSTAT = 0x04  # RXFULL 0..3, RXEMPTY 8..11, TXFULL 16..19, TXEMPTY 24..27 (one bit per SM)


def address(chip_addr):
    """The address to access for the chip's register at `chip_addr`."""
    m = getattr(machine, "register_address", None)
    return chip_addr if m is None else m(chip_addr)


def pwm_cc(gpio):
    """Address of the CC register of the PWM slice that drives `gpio`, and the bit shift of its
    channel in that word (A: 0, B: 16)."""
    sl = (gpio >> 1) & 7
    return address(PWM_BASE + PWM_CC + PWM_STRIDE * sl), 16 * (gpio & 1)


def pio_fstat(sm_id):
    """Address of the FSTAT register of the PIO block of state machine `sm_id` (0..7), and the
    RXEMPTY bit of that machine."""
    return address(PIO_BASE[sm_id >> 2] + PIO_FSTAT), 1 << (8 + (sm_id & 3))

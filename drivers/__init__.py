"""Hardware access for the RP2040. Each driver takes its pins/peripherals as arguments."""

"""The discrete-event simulator: `simulate(scenario, seed)` returns an immutable `SimRecord`."""
from lepton_sim.sim.engine import Simulation, simulate
from lepton_sim.sim.record import LinkTally, PoolTally, ServiceTally, SimRecord

__all__ = ["LinkTally", "PoolTally", "ServiceTally", "SimRecord", "Simulation", "simulate"]

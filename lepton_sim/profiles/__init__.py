"""Measured kernel profiles: the file format, loading, and the models that use them.

- `load_profile(path)` reads and validates a profile (ValueError naming the bad key otherwise);
  `load_profile_cached(path)` memoises it for callers that load the same file many times;
- `measured_batch_times(...)` is the measured service-time model (same `BatchTimes` as the roofline);
- `digits_accuracy` / `digits_variants` give the real model's measured variant accuracy;
- `codec_model` gives a payload codec's ratio and seconds per byte on a data kind;
- `this_machine_entry` is the `this-machine` hardware catalogue entry built from a profile.
"""
from lepton_sim.profiles.format import FORMAT, VERSION, Profile, load_profile, load_profile_cached, parse_profile
from lepton_sim.profiles.machine import (
    digits_accuracy,
    digits_variants,
    reference_profile_path,
    this_machine_entry,
)
from lepton_sim.profiles.measured import measured_batch_times
from lepton_sim.profiles.payload import NO_CODEC, Codec, codec_model

__all__ = ["FORMAT", "VERSION", "NO_CODEC", "Codec", "Profile", "codec_model", "digits_accuracy",
           "digits_variants", "load_profile", "load_profile_cached", "measured_batch_times", "parse_profile",
           "reference_profile_path", "this_machine_entry"]


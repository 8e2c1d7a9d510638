//! VDUSE (being written).

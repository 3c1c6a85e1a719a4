//! Hardware discovery and per-core tuning profiles (issue 4; nothing here yet).

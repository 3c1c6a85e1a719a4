//! Load generator and benchmark harness (issue 4; nothing here yet).

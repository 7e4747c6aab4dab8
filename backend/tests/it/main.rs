//! The backend's one integration test binary; modules by theme.

mod embedded_log;

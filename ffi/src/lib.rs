//! C ABI for tickcast (placeholder until the C ABI issue).

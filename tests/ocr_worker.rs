//! OCR in the worker.

//! The kernel's value types: bank vocabulary (concepts, minirefs, payin
//! reference codes), exchange-rate arithmetic and IBANs.

mod bank;
mod fx;
mod iban;

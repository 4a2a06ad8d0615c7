//! # scarce-io
//!
//! Medical images in: DICOM files in every common transfer syntax (decoded exactly as
//! pydicom decodes them), DICOM series assembled into volumes, NIfTI-1 / NIfTI-2 read and
//! write (as nibabel reads them), all into one [`Image`] type that carries its geometry.
//! No tensor library: conversion to tensors lives with the tensor side.
#![deny(missing_docs)]
#![deny(unsafe_code)] // allowed in one module only: the libjpeg-turbo calls of `dicom::jpeg12`

pub mod dicom;
pub mod error;
pub mod image;
pub mod nifti;
pub mod samples;

pub use dicom::{DicomFile, PixelArray};
pub use error::{Error, Result};
pub use image::{Image, Metadata};
pub use nifti::{write_nifti, Nifti, NiftiHeader};
pub use samples::{Dtype, Samples, Stats};

/// The README's examples, compiled and run as documentation tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

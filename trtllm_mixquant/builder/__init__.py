"""`python build.py`: from one Hugging Face folder (`source`), the BF16 generation engine and the
ModelOpt-quantized context engine (`quantize`, calibrated on `calibration`), each with its
`engine.json` manifest (`pipeline`)."""

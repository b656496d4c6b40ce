"""E2M1 rounding table, codes, and packing."""

from __future__ import annotations

import pytest
import torch

from trtllm_mixquant.formats import decode_e2m1, encode_e2m1, pack_e2m1, round_to_e2m1, unpack_e2m1

# (input, rounded value, code): every tie goes to the even neighbour, everything above 5 saturates to 6.
TABLE = [
    (0.0, 0.0, 0), (0.1, 0.0, 0), (0.25, 0.0, 0), (0.3, 0.5, 1), (0.5, 0.5, 1), (0.75, 1.0, 2),
    (1.0, 1.0, 2), (1.25, 1.0, 2), (1.3, 1.5, 3), (1.5, 1.5, 3), (1.75, 2.0, 4), (2.0, 2.0, 4),
    (2.5, 2.0, 4), (2.6, 3.0, 5), (3.0, 3.0, 5), (3.5, 4.0, 6), (4.0, 4.0, 6), (5.0, 4.0, 6),
    (5.1, 6.0, 7), (6.0, 6.0, 7), (7.0, 6.0, 7), (1e30, 6.0, 7),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_rounding_table_positive_and_negative(dtype: torch.dtype) -> None:
    x = torch.tensor([t[0] for t in TABLE]).clamp(max=torch.finfo(dtype).max).to(dtype)
    values = torch.tensor([t[1] for t in TABLE])
    codes = torch.tensor([t[2] for t in TABLE], dtype=torch.uint8)
    assert torch.equal(round_to_e2m1(x), values)
    assert torch.equal(encode_e2m1(x), codes)
    assert torch.equal(round_to_e2m1(-x), -values)
    negative_codes = torch.where(x > 0, codes | 8, codes)  # -0.0 input keeps code 0 (ModelOpt: sign = x < 0)
    assert torch.equal(encode_e2m1(-x), negative_codes)


def test_negative_values_rounding_to_zero_keep_the_sign_bit() -> None:
    x = torch.tensor([-0.25, -1e-30, -0.0, 0.0, 0.25])
    assert encode_e2m1(x).tolist() == [8, 8, 0, 0, 0]
    rounded = round_to_e2m1(x)
    assert torch.equal(torch.signbit(rounded), torch.tensor([True, True, True, False, False]))
    assert rounded.abs().max() == 0


def test_decode_every_code() -> None:
    codes = torch.arange(16, dtype=torch.uint8)
    expected = [0, 0.5, 1, 1.5, 2, 3, 4, 6, 0, -0.5, -1, -1.5, -2, -3, -4, -6]
    assert decode_e2m1(codes).tolist() == expected
    assert not torch.signbit(decode_e2m1(codes)[8])  # code 8 ("-0") decodes to +0
    assert decode_e2m1(codes, torch.bfloat16).dtype == torch.bfloat16


def test_encode_decode_is_rounding() -> None:
    x = torch.linspace(-8, 8, 4097)
    assert torch.equal(decode_e2m1(encode_e2m1(x)), round_to_e2m1(x) + 0.0)  # + 0.0 turns -0.0 into +0.0


def test_nibble_order() -> None:
    codes = torch.tensor([[0x1, 0xA, 0xF, 0x0, 0x7, 0x8]], dtype=torch.uint8)
    packed = pack_e2m1(codes)
    assert packed.tolist() == [[0xA1, 0x0F, 0x87]]  # element 2i in the low nibble, 2i+1 in the high nibble
    assert torch.equal(unpack_e2m1(packed), codes)


@pytest.mark.parametrize("shape", [(2,), (3, 16), (2, 5, 64)])
def test_pack_unpack_round_trip(shape: tuple[int, ...]) -> None:
    codes = torch.randint(0, 16, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    packed = pack_e2m1(codes)
    assert packed.shape == (*shape[:-1], shape[-1] // 2)
    assert torch.equal(unpack_e2m1(packed), codes)
    all_bytes = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(pack_e2m1(unpack_e2m1(all_bytes)), all_bytes)

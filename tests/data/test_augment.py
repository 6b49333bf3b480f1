import pytest
import torch

from astrogen.data.augment import Augment, dihedral, periodic_shift
from astrogen.errors import DataError


def reference(x, k):
    """The dihedral map k of one image, written with flips (the test's independent definition)."""
    rotated = torch.rot90(x, k % 4, dims=(-2, -1))
    return rotated.transpose(-2, -1) if k >= 4 else rotated


def test_dihedral_matches_per_sample_reference_and_is_the_whole_group(device):
    x = torch.randn(16, 2, 5, 5, device=device)
    k = torch.arange(16) % 8
    out = dihedral(x, k)
    for n in range(16):
        torch.testing.assert_close(out[n], reference(x[n], int(k[n])), rtol=0, atol=0)
    # The 8 images of an asymmetric image are all distinct and include both flips.
    images = dihedral(x[:1].expand(8, -1, -1, -1), torch.arange(8, device=device))
    assert len({tuple(im.flatten().tolist()) for im in images}) == 8
    flips = [torch.flip(x[0], (-1,)), torch.flip(x[0], (-2,))]
    assert all(any(torch.equal(f, im) for im in images) for f in flips)


def test_dihedral_on_3d_fields_acts_on_the_last_two_axes():
    x = torch.randn(3, 1, 4, 6, 6)
    out = dihedral(x, torch.tensor([1, 4, 7]))
    for n, k in enumerate([1, 4, 7]):
        torch.testing.assert_close(out[n], reference(x[n], k), rtol=0, atol=0)


def test_periodic_shift_equals_roll(device):
    x = torch.randn(5, 2, 4, 6, 7, device=device)
    shifts = torch.randint(0, 20, (5, 3))
    out = periodic_shift(x, shifts)
    for n in range(5):
        torch.testing.assert_close(out[n], torch.roll(x[n], tuple(shifts[n].tolist()), (-3, -2, -1)))


def test_augment_is_seeded_and_preserves_pixel_values(device):
    x = torch.randn(32, 1, 8, 8, device=device)
    aug = Augment(dihedral=True, shift=True)
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert a.device == x.device
    torch.testing.assert_close(a.flatten(1).sort(1).values, x.flatten(1).sort(1).values)


def test_dihedral_rejects_non_square_images():
    with pytest.raises(DataError, match="square"):
        dihedral(torch.zeros(1, 1, 4, 5), torch.tensor([1]))


def test_flips_draw_exactly_the_four_maps_that_keep_the_image_axes():
    x = torch.randn(1, 1, 5, 5)
    out = Augment(dihedral="flips")(x.expand(200, -1, -1, -1), torch.Generator().manual_seed(0))
    seen = {tuple(im.flatten().tolist()) for im in out}
    expected = {tuple(torch.flip(x[0], dims).flatten().tolist()) for dims in [(), (-1,), (-2,), (-2, -1)]}
    assert seen == expected
    with pytest.raises(DataError, match="flips"):
        Augment(dihedral="mirror")

"""A video's segments: its soundtrack's windows (end-aligned last window included), each with the frames
of its own seconds, whatever the picture's length; a window that starts after the last frame has none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_media import needs_ffmpeg
from fixtures_video import ffmpeg

from diffgap_search.config import VideoConfig, WindowConfig
from diffgap_search.indexing.decode import decode_file
from diffgap_search.media.video import open_frames

pytestmark = needs_ffmpeg


def make_video(path: Path, picture_s: float, sound_s: float) -> Path:
    """A grey-ramp picture of ``picture_s`` s at 4 fps and a 440 Hz PCM soundtrack of ``sound_s`` s."""
    ffmpeg("-f", "lavfi", "-t", str(picture_s), "-i", "testsrc=size=32x24:rate=4",
           "-f", "lavfi", "-t", str(sound_s), "-i", "sine=frequency=440:sample_rate=16000",
           "-c:v", "libx264", "-preset", "ultrafast", "-threads", "1", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le",
           str(path))
    return path


@pytest.mark.parametrize(("picture_s", "sound_s", "expected", "with_frames"), [
    (10.5, 10.25, [(0.0, 10.0), (0.25, 10.25)], [True, True]),           # a real clip, a hair over 10 s
    (3.0, 25.0, [(0.0, 10.0), (10.0, 20.0), (15.0, 25.0)], [True, False, False]),  # picture stops at 3 s
])
def test_segments_pair_frames_by_their_own_seconds(tmp_path: Path, picture_s: float, sound_s: float,
                                                   expected: list[tuple[float, float]], with_frames: list[bool]) -> None:
    video = make_video(tmp_path / "v.mkv", picture_s, sound_s)
    cfg, vcfg = WindowConfig(), VideoConfig(fps=4.0, size=16)
    result = decode_file(video, "video", cfg, vcfg, 32)
    assert result.error is None and result.has_audio
    assert [(s.start_s, s.end_s) for s in result.segments] == expected
    assert [s.frames is not None for s in result.segments] == with_frames
    assert all(s.audio is not None and s.audio.shape == (480_000,) for s in result.segments)
    sampler = open_frames(video, fps=4.0, size=16)
    for seg in result.segments:
        if seg.frames is not None:
            assert seg.frames.shape == (40, 16, 16, 3)
            np.testing.assert_array_equal(seg.frames, sampler.window(seg.start_s, seg.end_s).frames)

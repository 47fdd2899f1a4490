"""Real recordings for tests and benchmarks: the CC0 samples of Debian's ``sonic-pi-samples`` package.

The package installs Sonic Pi's samples as 44.1 kHz FLAC files in ``/usr/share/sonic-pi/samples``. Only
the 130 files that its Debian copyright file (``/usr/share/doc/sonic-pi-samples/copyright``) lists with
``License: CC0`` are used; they all come from freesound.org (the table keeps each one's source page; one,
``loop_garzul``, has none listed). The other files of the package are never touched.

Each row names the file stem and a *kind of sound*, our category scheme for neighbour-agreement
measurements. Sonic Pi's own prefixes (``bd``, ``drum``, ``elec``, ...) mix kinds (``drum_`` holds kicks,
snares, cymbals and toms; ``elec_`` kicks, snares and blips), so the kinds regroup them:

- ``kick``: kick drums (``bd_*``, ``drum_bass_*``, ``drum_heavy_kick``, ``elec_*_kick``) — 17
- ``snare``: snare drums and a snare roll (``sn_*``, ``drum_snare_*``, ``drum_roll``, ``elec_*snare``) — 11
- ``cymbal``: hi-hats, crashes and splashes (``drum_cymbal_*``, ``drum_splash_*``, ``elec_cymbal``) — 8
- ``tom``: tom-toms (``drum_tom_*``, ``elec_fuzz_tom``) — 7
- ``tabla``: single tabla strokes (``tabla_*``) — 26
- ``bass``: synth bass notes (``bass_*``) — 9
- ``drone``: sustained ambient tones, hums and pads (``ambi_*`` except the whooshes) — 8
- ``loop``: drum and percussion loops (``loop_*``) — 9
- ``blip``: short electronic tones, beeps and pings (the other ``elec_*``) — 16
- ``guitar``: guitar chords and slides (``guit_*``) — 4
- ``vinyl``: turntable noises (``vinyl_*``) — 4
- ``whoosh``: whooshes and swishes (``ambi_dark_woosh``, ``ambi_swoosh``, ``perc_swash``) — 3
- ``bell`` (``perc_bell``, ``drum_cowbell``) and ``snap`` (finger snaps) — 2 each
- singletons, which serve only as distractors: ``impact``, ``animal``, ``voice``, ``mechanism``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

SAMPLES_DIR = Path("/usr/share/sonic-pi/samples")
MISSING_REASON = (
    f"real recordings absent: {SAMPLES_DIR} does not exist (apt-get install sonic-pi-samples provides "
    "the CC0 samples these tests use)"
)


@dataclass(frozen=True)
class RealSound:
    """One CC0 sample: ``stem`` (file name without ``.flac``), its ``kind`` and its freesound ``source``."""

    stem: str
    kind: str
    source: str | None

    @property
    def prefix(self) -> str:
        """Sonic Pi's own group: the stem before the first ``_`` (``bd``, ``drum``, ``tabla``, ...)."""
        return self.stem.split("_", 1)[0]

    @property
    def path(self) -> Path:
        return SAMPLES_DIR / f"{self.stem}.flac"


REAL_SOUNDS: tuple[RealSound, ...] = (
    RealSound("ambi_choir", "drone", "http://freesound.org/people/Exsomniel/sounds/207809/"),
    RealSound("ambi_dark_woosh", "whoosh", "http://freesound.org/people/EcoDTR/sounds/27281/"),
    RealSound("ambi_drone", "drone", "http://freesound.org/people/Autistic%20Lucario/sounds/195341/"),
    RealSound("ambi_glass_hum", "drone", "http://freesound.org/people/kaligari/sounds/35391/"),
    RealSound("ambi_glass_rub", "drone", "http://freesound.org/people/ani_music/sounds/198403/"),
    RealSound("ambi_haunted_hum", "drone", "http://freesound.org/people/kaligari/sounds/35392/"),
    RealSound("ambi_lunar_land", "drone", "http://freesound.org/people/maqsim/sounds/172157/"),
    RealSound("ambi_piano", "drone", "http://freesound.org/people/RutgerMuller/sounds/51245/"),
    RealSound("ambi_soft_buzz", "drone", "http://freesound.org/people/ludvique/sounds/71852/"),
    RealSound("ambi_swoosh", "whoosh", "http://freesound.org/people/Halgrimm/sounds/169867/"),
    RealSound("bass_dnb_f", "bass", "http://freesound.org/people/Exsomniel/sounds/206134/"),
    RealSound("bass_drop_c", "bass", "http://freesound.org/people/ani_music/sounds/165320/"),
    RealSound("bass_hard_c", "bass", "http://freesound.org/people/ani_music/sounds/165309/"),
    RealSound("bass_hit_c", "bass", "http://freesound.org/people/oceanictrancer/sounds/211614/"),
    RealSound("bass_thick_c", "bass", "http://freesound.org/people/ani_music/sounds/165314/"),
    RealSound("bass_trance_c", "bass", "http://freesound.org/people/ani_music/sounds/165329/"),
    RealSound("bass_voxy_c", "bass", "http://freesound.org/people/ani_music/sounds/165325/"),
    RealSound("bass_voxy_hit_c", "bass", "http://freesound.org/people/ani_music/sounds/165327/"),
    RealSound("bass_woodsy_c", "bass", "http://freesound.org/people/ani_music/sounds/165322/"),
    RealSound("bd_808", "kick", "http://freesound.org/people/EKVelika/sounds/208447/"),
    RealSound("bd_ada", "kick", "http://www.freesound.org/people/adammusic18/sounds/208871/"),
    RealSound("bd_boom", "kick", "http://freesound.org/people/Snapper4298/sounds/157245/"),
    RealSound("bd_fat", "kick", "http://freesound.org/people/cubix/sounds/124386/"),
    RealSound("bd_gas", "kick", "http://freesound.org/people/menegass/sounds/89460/"),
    RealSound("bd_haus", "kick", "http://freesound.org/people/Rodrigo%20The%20Mad/sounds/137722/"),
    RealSound("bd_klub", "kick", "http://freesound.org/people/zgump/sounds/83262/"),
    RealSound("bd_pure", "kick", "http://freesound.org/people/EKVelika/sounds/209571/"),
    RealSound("bd_sone", "kick", "http://freesound.org/people/soneproject/sounds/223090/"),
    RealSound("bd_tek", "kick", "http://freesound.org/people/DWSD/sounds/171104/"),
    RealSound("bd_zome", "kick", "http://freesound.org/people/Dolfeus/sounds/55231/"),
    RealSound("bd_zum", "kick", "http://freesound.org/people/n1ghthawk/sounds/172124/"),
    RealSound("drum_bass_hard", "kick", "http://www.freesound.org/people/menegass/sounds/100051/"),
    RealSound("drum_bass_soft", "kick", "http://www.freesound.org/people/menegass/sounds/100052/"),
    RealSound("drum_cowbell", "bell", "http://freesound.org/people/Neotone/sounds/75338/"),
    RealSound("drum_cymbal_closed", "cymbal", "http://www.freesound.org/people/menegass/sounds/100053/"),
    RealSound("drum_cymbal_hard", "cymbal", "http://www.freesound.org/people/menegass/sounds/100056/"),
    RealSound("drum_cymbal_open", "cymbal", "http://www.freesound.org/people/menegass/sounds/100055/"),
    RealSound("drum_cymbal_pedal", "cymbal", "http://www.freesound.org/people/menegass/sounds/100054/"),
    RealSound("drum_cymbal_soft", "cymbal", "http://www.freesound.org/people/menegass/sounds/100057/"),
    RealSound("drum_heavy_kick", "kick", "http://freesound.org/people/Zajo/sounds/4832/"),
    RealSound("drum_roll", "snare", "http://freesound.org/people/Heigh-hoo/sounds/19433/"),
    RealSound("drum_snare_hard", "snare", "http://www.freesound.org/people/menegass/sounds/100058/"),
    RealSound("drum_snare_soft", "snare", "http://www.freesound.org/people/menegass/sounds/100059/"),
    RealSound("drum_splash_hard", "cymbal", "http://www.freesound.org/people/menegass/sounds/100060/"),
    RealSound("drum_splash_soft", "cymbal", "http://www.freesound.org/people/menegass/sounds/100061/"),
    RealSound("drum_tom_hi_hard", "tom", "http://www.freesound.org/people/menegass/sounds/100062/"),
    RealSound("drum_tom_hi_soft", "tom", "http://www.freesound.org/people/menegass/sounds/100063/"),
    RealSound("drum_tom_lo_hard", "tom", "http://www.freesound.org/people/menegass/sounds/100064/"),
    RealSound("drum_tom_lo_soft", "tom", "http://www.freesound.org/people/menegass/sounds/100065/"),
    RealSound("drum_tom_mid_hard", "tom", "http://www.freesound.org/people/menegass/sounds/100066/"),
    RealSound("drum_tom_mid_soft", "tom", "http://www.freesound.org/people/menegass/sounds/100067/"),
    RealSound("elec_beep", "blip", "http://www.freesound.org/people/looppool/sounds/13126/"),
    RealSound("elec_bell", "blip", "http://www.freesound.org/people/looppool/sounds/13116/"),
    RealSound("elec_blip", "blip", "http://www.freesound.org/people/looppool/sounds/13121/"),
    RealSound("elec_blip2", "blip", "http://www.freesound.org/people/looppool/sounds/13120/"),
    RealSound("elec_blup", "blip", "http://www.freesound.org/people/looppool/sounds/13092/"),
    RealSound("elec_bong", "blip", "http://www.freesound.org/people/looppool/sounds/13137/"),
    RealSound("elec_chime", "blip", "http://www.freesound.org/people/looppool/sounds/13138/"),
    RealSound("elec_cymbal", "cymbal", "http://www.freesound.org/people/looppool/sounds/13143/"),
    RealSound("elec_filt_snare", "snare", "http://www.freesound.org/people/looppool/sounds/13141/"),
    RealSound("elec_flip", "blip", "http://www.freesound.org/people/looppool/sounds/13114/"),
    RealSound("elec_fuzz_tom", "tom", "http://www.freesound.org/people/looppool/sounds/13140/"),
    RealSound("elec_hi_snare", "snare", "http://www.freesound.org/people/looppool/sounds/13125/"),
    RealSound("elec_hollow_kick", "kick", "http://www.freesound.org/people/looppool/sounds/13099/"),
    RealSound("elec_lo_snare", "snare", "http://www.freesound.org/people/looppool/sounds/13145/"),
    RealSound("elec_mid_snare", "snare", "http://www.freesound.org/people/looppool/sounds/13132/"),
    RealSound("elec_ping", "blip", "http://www.freesound.org/people/looppool/sounds/13119/"),
    RealSound("elec_plip", "blip", "http://www.freesound.org/people/looppool/sounds/13093/"),
    RealSound("elec_pop", "blip", "http://www.freesound.org/people/looppool/sounds/13134/"),
    RealSound("elec_snare", "snare", "http://www.freesound.org/people/looppool/sounds/13146/"),
    RealSound("elec_soft_kick", "kick", "http://www.freesound.org/people/looppool/sounds/13142/"),
    RealSound("elec_tick", "blip", "http://www.freesound.org/people/looppool/sounds/13113/"),
    RealSound("elec_triangle", "blip", "http://www.freesound.org/people/looppool/sounds/13147/"),
    RealSound("elec_twang", "blip", "http://www.freesound.org/people/looppool/sounds/13136/"),
    RealSound("elec_twip", "blip", "http://www.freesound.org/people/looppool/sounds/13094/"),
    RealSound("elec_wood", "blip", "http://www.freesound.org/people/looppool/sounds/13135/"),
    RealSound("guit_e_fifths", "guitar", "http://freesound.org/people/Sub-d/sounds/46990/"),
    RealSound("guit_e_slide", "guitar", "http://freesound.org/people/Suva/sounds/2410/"),
    RealSound("guit_em9", "guitar", "http://www.freesound.org/people/Sub-d/sounds/46992/"),
    RealSound("guit_harmonics", "guitar", "http://freesound.org/people/BStateham/sounds/141524/"),
    RealSound("loop_amen", "loop", "http://freesound.org/people/Dolfeus/sounds/43389/"),
    RealSound("loop_amen_full", "loop", "http://freesound.org/people/gowers/sounds/202537/"),
    RealSound("loop_breakbeat", "loop", "http://freesound.org/people/Snapper4298/sounds/160354/"),
    RealSound("loop_compus", "loop", "http://freesound.org/people/godspine/sounds/212288/"),
    RealSound("loop_garzul", "loop", None),
    RealSound("loop_industrial", "loop", "http://freesound.org/people/godspine/sounds/222072/"),
    RealSound("loop_mika", "loop", "http://freesound.org/people/mika55/sounds/188551/"),
    RealSound("loop_safari", "loop", "http://freesound.org/people/nemaavla/sounds/318759/"),
    RealSound("loop_tabla", "loop", "http://freesound.org/people/lezaarth/sounds/242591/"),
    RealSound("misc_burp", "voice", "http://freesound.org/people/anas76/sounds/222022/"),
    RealSound("misc_cineboom", "impact", "http://freesound.org/people/Northern_Monkey/sounds/177242/"),
    RealSound("misc_crow", "animal", "http://freesound.org/people/davidworksonline/sounds/54973/"),
    RealSound("perc_bell", "bell", "http://freesound.org/people/AlaskaRobotics/sounds/221515/"),
    RealSound("perc_snap", "snap", "http://www.freesound.org/people/SoundCollectah/sounds/109400/"),
    RealSound("perc_snap2", "snap", "http://www.freesound.org/people/Peram/sounds/158615/"),
    RealSound("perc_swash", "whoosh", "http://freesound.org/people/qubodup/sounds/60009/"),
    RealSound("perc_till", "mechanism", "http://freesound.org/people/Zott820/sounds/209578/"),
    RealSound("sn_dolf", "snare", "http://freesound.org/people/Dolfeus/sounds/57534/"),
    RealSound("sn_dub", "snare", "http://freesound.org/people/Adriak909/sounds/173142/"),
    RealSound("sn_zome", "snare", "http://freesound.org/people/Dolfeus/sounds/55232/"),
    RealSound("tabla_dhec", "tabla", "http://freesound.org/people/dio_333/sounds/130407/"),
    RealSound("tabla_ghe1", "tabla", "http://freesound.org/people/dio_333/sounds/130406/"),
    RealSound("tabla_ghe2", "tabla", "http://freesound.org/people/dio_333/sounds/130405/"),
    RealSound("tabla_ghe3", "tabla", "http://freesound.org/people/dio_333/sounds/130404/"),
    RealSound("tabla_ghe4", "tabla", "http://freesound.org/people/dio_333/sounds/130411/"),
    RealSound("tabla_ghe5", "tabla", "http://freesound.org/people/dio_333/sounds/130410/"),
    RealSound("tabla_ghe6", "tabla", "http://freesound.org/people/dio_333/sounds/130409/"),
    RealSound("tabla_ghe7", "tabla", "http://freesound.org/people/dio_333/sounds/130408/"),
    RealSound("tabla_ghe8", "tabla", "http://freesound.org/people/dio_333/sounds/130414/"),
    RealSound("tabla_ke1", "tabla", "http://freesound.org/people/dio_333/sounds/130413/"),
    RealSound("tabla_ke2", "tabla", "http://freesound.org/people/dio_333/sounds/130424/"),
    RealSound("tabla_ke3", "tabla", "http://freesound.org/people/dio_333/sounds/130423/"),
    RealSound("tabla_na", "tabla", "http://freesound.org/people/dio_333/sounds/130421/"),
    RealSound("tabla_na_o", "tabla", "http://freesound.org/people/dio_333/sounds/130422/"),
    RealSound("tabla_na_s", "tabla", "http://freesound.org/people/dio_333/sounds/130428/"),
    RealSound("tabla_re", "tabla", "http://freesound.org/people/dio_333/sounds/130427/"),
    RealSound("tabla_tas1", "tabla", "http://freesound.org/people/dio_333/sounds/130427/"),
    RealSound("tabla_tas2", "tabla", "http://freesound.org/people/dio_333/sounds/130425/"),
    RealSound("tabla_tas3", "tabla", "http://freesound.org/people/dio_333/sounds/130430/"),
    RealSound("tabla_te1", "tabla", "http://freesound.org/people/dio_333/sounds/130429/"),
    RealSound("tabla_te2", "tabla", "http://freesound.org/people/dio_333/sounds/130418/"),
    RealSound("tabla_te_m", "tabla", "http://freesound.org/people/dio_333/sounds/130415/"),
    RealSound("tabla_te_ne", "tabla", "http://freesound.org/people/dio_333/sounds/130417/"),
    RealSound("tabla_tun1", "tabla", "http://freesound.org/people/dio_333/sounds/130416/"),
    RealSound("tabla_tun2", "tabla", "http://freesound.org/people/dio_333/sounds/130419/"),
    RealSound("tabla_tun3", "tabla", "http://freesound.org/people/dio_333/sounds/130420/"),
    RealSound("vinyl_backspin", "vinyl", "http://freesound.org/people/il112/sounds/182316/"),
    RealSound("vinyl_hiss", "vinyl", "http://freesound.org/people/veezay/sounds/130393/"),
    RealSound("vinyl_rewind", "vinyl", "http://freesound.org/people/TasmanianPower/sounds/162493/"),
    RealSound("vinyl_scratch", "vinyl", "http://freesound.org/people/hello_flowers/sounds/28681/"),
)


def kind_counts(sounds: tuple[RealSound, ...] = REAL_SOUNDS) -> Counter[str]:
    """How many samples each kind has."""
    return Counter(s.kind for s in sounds)


def available_real_sounds(sounds: tuple[RealSound, ...] = REAL_SOUNDS) -> list[RealSound]:
    """The rows whose file is present (all of them where the package is installed); [] without it."""
    if not SAMPLES_DIR.is_dir():
        return []
    return [s for s in sounds if s.path.is_file()]


def require_real_sounds(sounds: tuple[RealSound, ...] = REAL_SOUNDS) -> list[RealSound]:
    """``available_real_sounds``, or a pytest skip saying why when the samples are absent or incomplete."""
    present = available_real_sounds(sounds)
    if not present:
        pytest.skip(MISSING_REASON)
    if len(present) < len(sounds):
        missing = sorted({s.stem for s in sounds} - {s.stem for s in present})
        pytest.skip(f"real recordings incomplete: {len(missing)} CC0 samples missing from {SAMPLES_DIR} "
                    f"(first: {missing[0]}.flac)")
    return present


@pytest.fixture(scope="session")
def real_sounds() -> list[RealSound]:
    """All 130 CC0 samples (skips the test when ``/usr/share/sonic-pi/samples`` is absent)."""
    return require_real_sounds()

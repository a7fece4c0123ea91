"""course_utils.subtitles and the CLI's --formato: SRT, WebVTT and JSON files, parsed back by their specs."""

import json
import math
import re
import subprocess
import sys

import pytest

from course_utils import speech, subtitles
from course_utils.errors import CourseError, OptionError

SRT_TIME = r"(\d{2}):(\d{2}):(\d{2}),(\d{3})"
VTT_TIME = r"(?:(\d{2,}):)?(\d{2}):(\d{2})\.(\d{3})"


def _seconds(groups) -> float:
    hours, minutes, seconds, millis = (int(g) if g else 0 for g in groups)
    assert minutes < 60 and seconds < 60
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    """SubRip, strictly: numbered blocks from 1, «HH:MM:SS,mmm --> HH:MM:SS,mmm», text, a blank line."""
    cues = []
    for number, block in enumerate(text.strip("\n").split("\n\n"), start=1):
        index, timing, *lines = block.split("\n")
        assert index == str(number), f"cue {number} is numbered {index!r}"
        match = re.fullmatch(f"{SRT_TIME} --> {SRT_TIME}", timing)
        assert match, f"bad SRT timing line {timing!r}"
        assert lines and all(line.strip() for line in lines), f"cue {number} has no text"
        cues.append((_seconds(match.groups()[:4]), _seconds(match.groups()[4:]), "\n".join(lines)))
    return cues


def parse_vtt(text: str) -> list[tuple[float, float, str]]:
    """WebVTT, strictly: the «WEBVTT» header, a blank line, then cues «[HH:]MM:SS.mmm --> …» and their text."""
    header, *blocks = text.strip("\n").split("\n\n")
    assert header == "WEBVTT"
    cues = []
    for block in blocks:
        timing, *lines = block.split("\n")
        match = re.fullmatch(f"{VTT_TIME} --> {VTT_TIME}", timing)
        assert match, f"bad VTT timing line {timing!r}"
        assert lines and all(line.strip() and "-->" not in line for line in lines)
        cues.append((_seconds(match.groups()[:4]), _seconds(match.groups()[4:]), "\n".join(lines)))
    return cues


def transcript(with_words: bool = True) -> speech.Transcript:
    def words(start, text):
        out = []
        for i, word in enumerate(text.split()):
            out.append(speech.Word(start + 0.4 * i, start + 0.4 * i + 0.3, " " + word, 0.9))
        return out if with_words else []

    segments = [
        speech.Segment(0.0, 2.5, "Hola, me llamo Ana.", 0.01, -0.2, 1.1, 0.0, words(0.1, "Hola, me llamo Ana.")),
        speech.Segment(3.25, 3671.5, "¿Qué es un LLM?", float("nan"), -0.3, 1.0, 0.0, words(3.3, "¿Qué es un LLM?")),
    ]
    return speech.Transcript("Hola, me llamo Ana. ¿Qué es un LLM?", segments, "es", "base", "whisper", 3672.0)


@pytest.mark.parametrize("parse, fmt", [(parse_srt, "srt"), (parse_vtt, "vtt")])
def test_one_cue_per_segment_with_its_times_and_text(parse, fmt):
    for with_words in (False, True):
        cues = parse(subtitles.subtitles(transcript(with_words), fmt))
        assert [text for _, _, text in cues] == ["Hola, me llamo Ana.", "¿Qué es un LLM?"]
        if with_words:  # a cue goes from its first word's start to its last word's end
            assert cues[0][:2] == (pytest.approx(0.1), pytest.approx(1.6)) and cues[1][0] == pytest.approx(3.3)
        else:
            assert cues[0][:2] == (0.0, 2.5) and cues[1][:2] == (3.25, 3671.5)  # past one hour: 01:01:11,500


def test_long_lines_are_cut_when_words_are_timed():
    cues = parse_srt(subtitles.subtitles(transcript(), "srt", max_line_width=10))  # at most 2 lines a cue
    assert [text for _, _, text in cues] == ["Hola, me\nllamo Ana.", "¿Qué es un\nLLM?"]
    cues = parse_srt(subtitles.subtitles(transcript(), "srt", max_line_width=6))
    assert len(cues) == 4 and all(len(line) <= 6 for _, _, text in cues for line in text.split("\n"))
    assert all(start < end for start, end, _ in cues) and [c[0] for c in cues] == sorted(c[0] for c in cues)
    assert " ".join(text.replace("\n", " ") for _, _, text in cues) == "Hola, me llamo Ana. ¿Qué es un LLM?"
    with pytest.raises(OptionError, match="tiempos de cada palabra"):
        subtitles.subtitles(transcript(with_words=False), "srt", max_line_width=10)


def test_a_segment_without_words_or_text_still_makes_valid_cues():
    result = transcript()
    result.segments[1].words = []  # its alignment failed: the cue spans the segment
    result.segments.append(speech.Segment(3671.5, 3671.5, ""))  # no text: no cue
    cues = parse_srt(subtitles.subtitles(result, "srt", max_line_width=10))
    assert cues == [(0.1, 1.6, "Hola, me\nllamo Ana."), (3.25, 3671.5, "¿Qué es un LLM?")]
    assert parse_vtt(subtitles.subtitles(result, "vtt"))[-1][2] == "¿Qué es un LLM?"


def test_json_keeps_everything_readable_and_valid():
    text = subtitles.subtitles(transcript(), "json")
    assert "¿Qué" in text and "NaN" not in text  # UTF-8, and no NaN (not JSON)
    data = json.loads(text)
    assert data["language"] == "es" and data["text"].startswith("Hola")
    first, second = data["segments"]
    assert first["start"] == 0.0 and first["end"] == 2.5 and first["no_speech_prob"] == 0.01
    assert second["no_speech_prob"] is None and second["words"][0]["text"] == " ¿Qué"
    assert math.isclose(second["words"][0]["start"], 3.3)


def test_write_picks_the_format_from_the_extension_and_says_bad_ones_in_spanish(tmp_path):
    written = subtitles.write_subtitles(transcript(), tmp_path / "clase.vtt")
    assert written.read_text(encoding="utf-8").startswith("WEBVTT\n")
    with pytest.raises(OptionError, match="«docx»"):
        subtitles.write_subtitles(transcript(), tmp_path / "clase.docx")
    with pytest.raises(CourseError, match="No pude escribir"):
        subtitles.write_subtitles(transcript(), tmp_path / "no-existe" / "clase.srt")


def _cues(path, fmt):
    text = path.read_text(encoding="utf-8")
    if fmt == "json":
        return [(s["start"], s["end"], s["text"]) for s in json.loads(text)["segments"]]
    return (parse_srt if fmt == "srt" else parse_vtt)(text)


def test_cli_writes_one_file_per_audio(samples, tmp_path):
    files = [samples / "gato.wav", samples / "hola.wav"]
    run = subprocess.run(
        [sys.executable, "-m", "course_utils.speech", *map(str, files), "--formato", "srt", "--carpeta", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert "Aviso: Modelo de prueba" in run.stdout and run.stdout.count("Escrito ") == 2
    for audio in files:
        cues = _cues(tmp_path / f"{audio.stem}.srt", "srt")
        assert cues and all(0 <= start <= end <= 6.2 for start, end, _ in cues)


@pytest.mark.parametrize("fmt", ["vtt", "json"])
def test_cli_other_formats_with_english_option_names(samples, tmp_path, capsys, fmt):
    args = [str(samples / "gato.wav"), "--format", fmt, "--output-dir", str(tmp_path)]
    assert speech.main(args) == 0
    assert f"Escrito {tmp_path / ('gato.' + fmt)}" in capsys.readouterr().out
    cues = _cues(tmp_path / f"gato.{fmt}", fmt)
    assert cues and all(0 <= start <= end <= 4.31 for start, end, _ in cues)


@pytest.mark.slow
def test_real_base_subtitles_parse_back_to_its_words_and_times(samples, tmp_path):
    checkpoint = str(speech.whisper_checkpoint_from_ct2(speech.ct2_from_parts()))
    result = speech.transcribe(samples / "hola.wav", model=checkpoint, word_timestamps=True)
    assert result.standin is None and "llamo Ana" in result.text
    srt = parse_srt(subtitles.write_subtitles(result, tmp_path / "hola.srt").read_text(encoding="utf-8"))
    words = [w for seg in result.segments for w in seg.words]
    assert [text for _, _, text in srt] == [seg.text for seg in result.segments]
    assert srt[0][0] == pytest.approx(words[0].start, abs=0.001) and srt[-1][1] == pytest.approx(
        words[-1].end, abs=0.001
    )
    vtt = parse_vtt(subtitles.subtitles(result, "vtt", max_line_width=20))
    assert len(vtt) >= 2 and all(len(line) <= 20 for _, _, text in vtt for line in text.split("\n"))
    assert " ".join(text.replace("\n", " ") for _, _, text in vtt) == result.text
    assert all(0 <= a < b <= result.duration for a, b, _ in vtt) and [c[0] for c in vtt] == sorted(c[0] for c in vtt)

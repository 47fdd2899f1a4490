"""An embedding actor's error as a row (``ray_engine/failure.py``): packed without pickle, raised by the
driver as the same DGSearchError (its exit code) or as an internal ActorError with the actor's traceback."""

from __future__ import annotations

import pytest

from diffgap_search.errors import DGSearchError, MediaDecodeError, ModelUnavailableError
from diffgap_search.indexing.ray_engine.failure import ActorError, ActorFailure
from diffgap_search.indexing.ray_engine.rows_codec import pack, unpack


def _failure_of(exc: BaseException) -> ActorFailure:
    try:
        raise exc
    except BaseException as raised:  # noqa: BLE001 - a real traceback, as the actor's except clause sees it
        return unpack(pack(ActorFailure.of(raised)))


def test_a_dgsearch_error_comes_back_as_itself_with_its_exit_code() -> None:
    failure = _failure_of(ModelUnavailableError("model directory '/m' does not exist"))
    assert (failure.error, failure.kind) == ("ModelUnavailableError", "ModelUnavailableError")
    raised = failure.raised()
    assert type(raised) is ModelUnavailableError
    assert (str(raised), raised.exit_code) == ("model directory '/m' does not exist", 5)


def test_a_subclass_with_its_own_attributes_keeps_its_class_and_message() -> None:
    raised = _failure_of(MediaDecodeError("cannot decode 'x.wav'")).raised()
    assert type(raised) is MediaDecodeError
    assert (str(raised), raised.exit_code) == ("cannot decode 'x.wav'", 11)


def test_any_other_exception_is_an_internal_error_with_the_actors_traceback() -> None:
    raised = _failure_of(ValueError("windows contain NaN or infinite samples")).raised()
    assert type(raised) is ActorError
    assert not isinstance(raised, DGSearchError)  # the CLI: exit 1, "internal error"
    assert str(raised) == "an embedding actor failed: ValueError: windows contain NaN or infinite samples"
    (note,) = raised.__notes__
    assert note.startswith("the actor's traceback:\nTraceback (most recent call last):\n")
    assert note.endswith("ValueError: windows contain NaN or infinite samples\n")


@pytest.mark.parametrize("name", ["EXIT_INTERNAL", "DGSearchError_", "Exception", "os", "ActorError"])
def test_a_name_that_is_not_an_error_class_of_the_project_builds_nothing_of_it(name: str) -> None:
    # a row is data: only classes of diffgap_search.errors that are DGSearchErrors are ever constructed
    raised = ActorFailure(name, "KeyError", "'x'").raised()
    assert type(raised) is ActorError
    assert str(raised) == "an embedding actor failed: KeyError: 'x'"

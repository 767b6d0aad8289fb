"""latentopt.workflow.rule_params: the param functions rules hand to Snakemake read as Snakemake
reads any function (the arguments it passes, whether a param is tracked), with their signature
looked up once instead of once per job."""

from __future__ import annotations

import inspect

from snakemake.common import get_function_params, get_input_function_aux_params

from latentopt.workflow.rule_params import known_signature, literal, untracked


def test_literal_is_a_wildcards_function_snakemake_reads_without_inspecting_it():
    value = ["a{1}", "b"]
    func = literal(value)
    assert func(None) is value
    assert list(get_function_params(func)) == list(inspect.signature(func).parameters) == ["wildcards"]


def test_untracked_takes_input_so_snakemake_does_not_record_it():
    func = untracked({"device": "cpu"})
    assert func(None, None) == {"device": "cpu"}
    assert list(get_function_params(func)) == ["wildcards", "input"]
    # the auxiliary arguments Snakemake hands a function: only those it names
    assert get_input_function_aux_params(func, {"input": 1, "output": 2, "attempt": 3}) == {"input": 1}


def test_known_signature_keeps_each_functions_own_argument_list():
    resource = known_signature(lambda wildcards, attempt: 2 * attempt)
    other = known_signature(lambda wildcards, input: None)
    assert list(get_function_params(resource)) == ["wildcards", "attempt"]
    assert list(get_function_params(other)) == ["wildcards", "input"]
    assert get_input_function_aux_params(resource, {"input": 1, "attempt": 3}) == {"attempt": 3}

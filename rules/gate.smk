# The quality gate: each loss's first images (the gate chunks) are checked before its other jobs run.


rule quality_gate:
    input:
        chunks=gate_manifests("{arm}"),
    output:
        verdict=str(layout.gate_file(RESULTS, "{arm}")),
        done=str(layout.gate_done(RESULTS, "{arm}")),
    log:
        str(layout.log_file(RESULTS, "quality_gate", "{arm}")),
    benchmark:
        str(layout.benchmark_file(RESULTS, "quality_gate", "{arm}"))
    wildcard_constraints:
        arm=layout.one_of(a for a in ARMS if a != layout.BASELINE),
    retries: 0  # a failed gate is a verdict, not a transient failure
    conda:
        "../envs/pipeline.yaml"
    params:
        gate=config["quality_gate"],
        loss=gate_loss_param,
    script:
        "../workflow_scripts/check_quality_gate.py"

# A study (config key `models`): the one-model workflow (this repository's Snakefile) imported
# once per model as a Snakemake module, on that model's own config (latentopt.workflow.study),
# with its rules named <model>_<rule>; then the comparison of the models in <results_dir>/study/.


# The study's own landing page of `snakemake --report` (set before the modules, whose own
# landing pages would otherwise stand in for the whole study).
report: "../report/workflow.rst"


for MODEL, MODEL_CONFIG in MODEL_CONFIGS.items():
    MODEL_PREFIX = f"{MODEL}_"

    module:
        name: MODEL
        snakefile:
            "../Snakefile"
        config:
            MODEL_CONFIG

    use rule * from MODEL as MODEL_PREFIX*


rule compare_models:
    input:
        **{
            f"table_{m}": p
            for m, p in model_outputs("summarize_evaluation", "table").items()
        },
        **{
            f"performance_{m}": p
            for m, p in model_outputs("summarize_evaluation", "performance").items()
        },
        **{f"report_{m}": p for m, p in model_outputs("report", "report").items()},
    output:
        analysis=f"{STUDY}/study_analysis.json",
        report=f"{STUDY}/study_report.md",
        html=report(
            f"{STUDY}/study_report.html",
            category="Study report",
            caption="../report/study_page.rst",
            labels={"item": "study report"},
        ),
        figures=report(
            directory(f"{STUDY}/figures"),
            patterns=["{name}.png"],
            category="Study report",
            caption="../report/study_figure.rst",
            labels={"figure": "{name}"},
        ),
    log:
        f"{STUDY}/logs/compare_models.log",
    benchmark:
        f"{STUDY}/benchmarks/compare_models.tsv"
    conda:
        "../envs/pipeline.yaml"
    params:
        study=study_params(config),
        settings=untracked(study_settings(MODEL_CONFIGS).params()),
    script:
        "../workflow_scripts/compare_models.py"


# The study-wide image explorer: every model's arms side by side (each gain over that model's
# plain decode), next to the models' PNG trees it shows (latentopt.report.explorer).
rule study_explorer:
    input:
        **{
            f"metrics_{m}": p
            for m, p in model_outputs("summarize_evaluation", "table").items()
        },
        **{
            f"categories_{m}": p
            for m, p in model_outputs("analyze_categories", "table").items()
        },
        **{f"explorer_{m}": p for m, p in model_outputs("explorer", "explorer").items()},
        report=f"{STUDY}/study_report.md",
    output:
        explorer=report(
            f"{STUDY}/IMAGE_EXPLORER.html",
            category="Study report",
            caption="../report/explorer.rst",
            labels={"item": "study image explorer"},
        ),
    log:
        f"{STUDY}/logs/study_explorer.log",
    conda:
        "../envs/pipeline.yaml"
    params:
        results=untracked({m: c["results_dir"] for m, c in MODEL_CONFIGS.items()}),
        experiment_id=config["experiment_id"],
    script:
        "../workflow_scripts/make_study_explorer.py"

"""Registers the scikit-optimize strategy (entry point `hpt = skopt`); skopt is imported only when it is used."""

from hpt import hookimpl


@hookimpl
def hpt_register_strategies(register):
    register(
        "skopt",
        "hpt_skopt.strategy:SkoptStrategy",
        requires={"skopt": "scikit-optimize"},
        extra="skopt",
        summary="Bayesian optimisation: GP (or rf/et/gbrt) surrogate, EI/PI/LCB/gp_hedge, constant liar",
    )

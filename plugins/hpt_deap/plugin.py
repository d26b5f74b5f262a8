"""Registers the DEAP strategies (entry point `hpt = deap`); DEAP is imported only when one is used."""

from hpt import hookimpl

_DEAP = {"deap": "deap"}


@hookimpl
def hpt_register_strategies(register):
    register(
        "deap",
        "hpt_deap.genetic:GeneticAlgorithm",
        requires=_DEAP,
        extra="deap",
        summary="genetic algorithm: tournament, SBX crossover, polynomial mutation, elitism",
    )
    register("cmaes", "hpt_deap.cmaes:CmaEs", requires=_DEAP, extra="deap", summary="CMA-ES in the unit cube")
    register("nsga2", "hpt_deap.nsga2:Nsga2", requires=_DEAP, extra="deap", summary="NSGA-II multi-objective search")

"""surveillance.mortality"""

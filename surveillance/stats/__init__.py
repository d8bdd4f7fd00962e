"""surveillance.stats"""

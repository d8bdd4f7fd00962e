"""surveillance.catalogue"""
